"""Which domain operation (auth/operations.py) each gRPC method is, read off its request.

IN_SERVICER marks methods whose servicer does the finer checks itself (answers filtered to
what the caller may describe; a Membership stream's join). A method without an entry is
for super users only, so a new RPC is closed until someone writes its line here."""

from __future__ import annotations

from typing import Any

from odradek.broker.auth import operations as op
from odradek.broker.auth.access import INTER_BROKER, PUBLIC, Access, Rule


def IN_SERVICER(request: Any, access: Access) -> None:  # noqa: N802 - a rule constant
    """The servicer checks (and hides) per topic itself."""


def _topics(request: Any) -> list[str]:
    """The topics a group request names (offsets committed, fetched or reset)."""
    if hasattr(request, "offsets"):
        return [o.topic for o in request.offsets]
    return [p.topic for p in request.partitions]


_BROKER: dict[str, Rule | str] = {
    "Produce": lambda r, a: op.produce(a, r.topic),
    "Fetch": lambda r, a: op.read_topic(a, r.topic),
    "Subscribe": lambda r, a: op.read_topic(a, r.topic),
    "ListOffsets": lambda r, a: op.read_topic(a, r.topic),
    "Metadata": IN_SERVICER,
    "InitProducerId": lambda r, a: op.init_producer_id(a, r.producer_name),
}
_ADMIN: dict[str, Rule | str] = {
    "CreateTopic": lambda r, a: op.create_topic(a, r.name),
    "DeleteTopic": lambda r, a: op.delete_topic(a, r.name),
    "ListTopics": IN_SERVICER,
    "DescribeTopic": IN_SERVICER,
    "AlterTopicConfigs": lambda r, a: op.alter_topic_configs(a, r.name),
    "CreatePartitions": lambda r, a: op.create_partitions(a, r.name),
    "ReassignPartition": lambda r, a: op.alter_cluster(a),
    "DrainBroker": lambda r, a: op.alter_cluster(a),
    "DeleteRecords": lambda r, a: op.delete_records(a, r.topic),
    "ElectLeaders": lambda r, a: op.alter_cluster(a),
    "DescribeBrokerConfigs": lambda r, a: op.describe_cluster(a),
    "AlterClusterConfigs": lambda r, a: op.alter_cluster_configs(a),
    "DescribeClusterConfigs": lambda r, a: op.describe_cluster_configs(a),
    "ListProducerNames": IN_SERVICER,
}
_SECURITY: dict[str, Rule | str] = {
    "ScramStart": PUBLIC,
    "ScramFinish": PUBLIC,
    **{m: (lambda r, a: op.alter_cluster(a))
       for m in ("CreateUser", "AlterUser", "DeleteUser", "CreateAcls", "DeleteAcls")},
    "ListUsers": lambda r, a: op.describe_cluster(a),
    "ListAcls": lambda r, a: op.describe_cluster(a),
}
# Membership (a request stream) checks the join in the servicer; ListGroups and
# FetchOffsets of every topic answer only with what the caller may describe.
_GROUPS: dict[str, Rule | str] = {
    "FindCoordinator": lambda r, a: op.describe_group(a, r.group_id),
    "Membership": IN_SERVICER,
    "CommitOffsets": lambda r, a: op.commit_offsets(a, r.group_id, _topics(r)),
    "FetchOffsets": lambda r, a: op.fetch_offsets(a, r.group_id, _topics(r)),
    "ListGroups": IN_SERVICER,
    "DescribeGroup": lambda r, a: op.describe_group(a, r.group_id),
    "DeleteGroup": lambda r, a: op.delete_group(a, r.group_id),
    "ResetOffsets": lambda r, a: op.reset_offsets(a, r.group_id, _topics(r)),
    "DeleteOffsets": lambda r, a: op.delete_offsets(a, r.group_id, _topics(r)),
}

GRPC_RULES: dict[str, Rule | str] = {
    f"/odradek.v1.{service}/{method}": rule
    for service, rules in (("Broker", _BROKER), ("Admin", _ADMIN), ("Security", _SECURITY),
                           ("Groups", _GROUPS),
                           ("Controller", {"Propose": INTER_BROKER,
                                           "FetchMetadata": INTER_BROKER}),
                           ("Raft", {"Exchange": INTER_BROKER}))
    for method, rule in rules.items()
}
