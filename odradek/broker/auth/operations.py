"""What each operation on the broker needs, in domain terms (a topic, a group, the
cluster), whatever front end the request came through. The gRPC front end maps its
methods onto these (grpc/authorization.py); a Kafka front end maps its APIs the same way.
Each raises the denial (Access.require) when the caller may not."""

from __future__ import annotations

from collections.abc import Iterable

from odradek.broker.auth.access import Access
from odradek.broker.metadata.security import CLUSTER_NAME


def produce(access: Access, topic: str) -> None:
    access.require("topic", topic, "write")


def read_topic(access: Access, topic: str) -> None:
    """Fetch, subscribe, list offsets."""
    access.require("topic", topic, "read")


def init_producer_id(access: Access, name: str = "") -> None:
    """A producer id is given to whom may idempotent_write the cluster or write some topic
    (what Kafka asks since 3.0); each produce then still needs write on its topic. A named
    producer needs write on its name (Kafka's transactional id): whoever may not use a
    name cannot fence the instances that do."""
    if name:
        access.require("producer_name", name, "write")
        return
    if access.allowed("cluster", CLUSTER_NAME, "idempotent_write") or \
            access.authorizer.allowed_for_some(access.principal, access.host, "topic", "write"):
        return
    access.require_cluster("idempotent_write")


def create_topic(access: Access, name: str) -> None:
    access.require_any(("cluster", CLUSTER_NAME, "create"), ("topic", name, "create"))


def delete_topic(access: Access, name: str) -> None:
    access.require("topic", name, "delete")


def delete_records(access: Access, topic: str) -> None:
    """DeleteRecords needs delete on the topic, as in Kafka."""
    access.require("topic", topic, "delete")


def alter_topic_configs(access: Access, name: str) -> None:
    access.require("topic", name, "alter_configs")


def describe_topic_configs(access: Access, name: str) -> None:
    access.require("topic", name, "describe_configs")


def create_partitions(access: Access, name: str) -> None:
    access.require("topic", name, "alter")


def alter_cluster(access: Access) -> None:
    """Reassignments, drains, users and ACLs."""
    access.require_cluster("alter")


def alter_cluster_configs(access: Access) -> None:
    """Cluster-wide topic defaults (Kafka: ALTER_CONFIGS on the cluster)."""
    access.require_cluster("alter_configs")


def describe_cluster_configs(access: Access) -> None:
    access.require_cluster("describe_configs")


def describe_cluster(access: Access) -> None:
    """Listing users and ACLs."""
    access.require_cluster("describe")


def describe_group(access: Access, group: str) -> None:
    access.require("group", group, "describe")


def delete_group(access: Access, group: str) -> None:
    access.require("group", group, "delete")


def join_group(access: Access, group: str) -> None:
    access.require("group", group, "read")


def _group_and_topics(access: Access, group: str, group_op: str, topics: Iterable[str],
                      topic_op: str) -> None:
    """Kafka's rule for offsets: the group, and each topic named."""
    access.require("group", group, group_op)
    for topic in sorted(set(topics)):
        access.require("topic", topic, topic_op)


def commit_offsets(access: Access, group: str, topics: Iterable[str]) -> None:
    _group_and_topics(access, group, "read", topics, "read")


def fetch_offsets(access: Access, group: str, topics: Iterable[str]) -> None:
    _group_and_topics(access, group, "describe", topics, "describe")


def reset_offsets(access: Access, group: str, topics: Iterable[str]) -> None:
    _group_and_topics(access, group, "read", topics, "read")


def delete_offsets(access: Access, group: str, topics: Iterable[str]) -> None:
    _group_and_topics(access, group, "delete", topics, "read")  # Kafka's OffsetDelete


def inter_broker(access: Access) -> None:
    access.require_super_user()
