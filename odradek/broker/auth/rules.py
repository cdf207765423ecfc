"""Which permission each RPC needs: one entry per method, keyed by its gRPC path.

A rule gets the decoded request and the caller's Access and raises PERMISSION_DENIED
(Access.require...) when the call is not allowed; IN_SERVICER marks methods whose
servicer does the finer checks itself (answers filtered to what the caller may describe).
Services added later add their entries here (or call `add_rules`); a method without an
entry is for super users only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from odradek.broker.auth.guard import INTER_BROKER, PUBLIC, Access, Rule
from odradek.broker.metadata.security import CLUSTER_NAME


def IN_SERVICER(request: Any, access: Access) -> None:  # noqa: N802 - a rule constant
    """The servicer checks (and hides) per topic itself."""


def topic_rule(operation: str, field: str = "topic") -> Rule:
    return lambda r, a: a.require("topic", getattr(r, field), operation)


def group_rule(operation: str, field: str = "group") -> Rule:
    return lambda r, a: a.require("group", getattr(r, field), operation)


def cluster_rule(operation: str) -> Rule:
    return lambda r, a: a.require_cluster(operation)


def _create_topic(request: Any, access: Access) -> None:
    access.require_any(("cluster", CLUSTER_NAME, "create"), ("topic", request.name, "create"))


def _idempotent_write(request: Any, access: Access) -> None:
    """A producer id is given to whom may idempotent_write the cluster or write some topic
    (what Kafka asks since 3.0); each Produce then still needs write on its topic."""
    if access.allowed("cluster", CLUSTER_NAME, "idempotent_write") or \
            access.authorizer.allowed_for_some(access.principal, access.host, "topic", "write"):
        return
    access.require_cluster("idempotent_write")


RULES: dict[str, Rule | str] = {}


def add_rules(service: str, rules: Mapping[str, Rule | str]) -> None:
    """Registers the rules of a service's methods ("odradek.v1.Groups", {"Join": ...})."""
    for method, rule in rules.items():
        RULES[f"/{service}/{method}"] = rule


add_rules("odradek.v1.Broker", {
    "Produce": topic_rule("write"),
    "Fetch": topic_rule("read"),
    "Subscribe": topic_rule("read"),
    "ListOffsets": topic_rule("read"),
    "Metadata": IN_SERVICER,
    "InitProducerId": _idempotent_write,
})
add_rules("odradek.v1.Admin", {
    "CreateTopic": _create_topic,
    "DeleteTopic": topic_rule("delete", "name"),
    "ListTopics": IN_SERVICER,
    "DescribeTopic": IN_SERVICER,
    "AlterTopicConfigs": topic_rule("alter_configs", "name"),
    "CreatePartitions": topic_rule("alter", "name"),
    "ReassignPartition": cluster_rule("alter"),
    "DrainBroker": cluster_rule("alter"),
})
add_rules("odradek.v1.Security", {
    "ScramStart": PUBLIC,
    "ScramFinish": PUBLIC,
    "CreateUser": cluster_rule("alter"),
    "AlterUser": cluster_rule("alter"),
    "DeleteUser": cluster_rule("alter"),
    "ListUsers": cluster_rule("describe"),
    "CreateAcls": cluster_rule("alter"),
    "DeleteAcls": cluster_rule("alter"),
    "ListAcls": cluster_rule("describe"),
})


def _topics_of(request: Any) -> list[str]:
    """The topics a group request names (offsets committed, fetched or reset)."""
    if hasattr(request, "offsets"):
        return sorted({o.topic for o in request.offsets})
    return sorted({p.topic for p in request.partitions})


def _group_and_topics(group_op: str, topic_op: str) -> Rule:
    """Kafka's rule for offsets: the group, and each topic named (a commit or reset needs
    read on it, a fetch describe)."""
    def rule(request: Any, access: Access) -> None:
        access.require("group", request.group_id, group_op)
        for topic in _topics_of(request):
            access.require("topic", topic, topic_op)
    return rule


# Membership (a request stream) checks read on the group at the join, in the servicer;
# ListGroups and FetchOffsets of every topic answer only with what the caller may describe.
add_rules("odradek.v1.Groups", {
    "FindCoordinator": group_rule("describe", "group_id"),
    "Membership": IN_SERVICER,
    "CommitOffsets": _group_and_topics("read", "read"),
    "FetchOffsets": _group_and_topics("describe", "describe"),
    "ListGroups": IN_SERVICER,
    "DescribeGroup": group_rule("describe", "group_id"),
    "DeleteGroup": group_rule("delete", "group_id"),
    "ResetOffsets": _group_and_topics("read", "read"),
})
add_rules("odradek.v1.Controller", {"Propose": INTER_BROKER, "FetchMetadata": INTER_BROKER})
add_rules("odradek.v1.Raft", {"Exchange": INTER_BROKER})
