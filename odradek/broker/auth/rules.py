"""Which permission each RPC needs: one entry per method, keyed by its gRPC path.

A rule gets the decoded request and the caller's Access and raises PERMISSION_DENIED
(Access.require...) when the call is not allowed; IN_SERVICER marks methods whose
servicer does the finer checks itself (answers filtered to what the caller may describe).
Services added later add their entries here (or call `add_rules`); a method without an
entry is for super users only. For consumer groups, for instance:

    add_rules("odradek.v1.Groups", {
        "Join": group_rule("read"), "CommitOffsets": group_rule("read"),
        "DescribeGroup": group_rule("describe"), "DeleteGroup": group_rule("delete")})

(with a `group` field in the requests; Kafka also checks read on each topic whose
offsets are committed or fetched: `lambda r, a: [a.require("topic", t, "read") for t in ...]`)."""

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
add_rules("odradek.v1.Controller", {"Propose": INTER_BROKER, "FetchMetadata": INTER_BROKER})
add_rules("odradek.v1.Raft", {"Exchange": INTER_BROKER})
