"""Kafka's ElectLeaders (API key 43) over the preferred-leader elections of
broker/elections.py, as kafka-leader-election.sh and the admin clients call it."""

from __future__ import annotations

from typing import Any

from odradek.broker.auth import operations as op
from odradek.broker.auth.access import Access
from odradek.broker.elections import ElectionResult, Outcome
from odradek.broker.kafka import codec
from odradek.broker.kafka import errors as err
from odradek.broker.peers.forward import GrpcAdminForwarder, elect_leaders
from odradek.broker.topic_admin import TopicAdmin

PREFERRED = 0
ELECTION_NOT_NEEDED = 84


async def elect(admin: TopicAdmin, forwarder: GrpcAdminForwarder, version: int, body: Any,
                access: Access) -> Any:
    module = codec.response_module(43, version)
    wanted = None if body.topic_partitions is None else [
        (t.topic, int(p)) for t in body.topic_partitions for p in t.partitions]
    try:
        op.alter_cluster(access)
    except Exception as exc:
        code, _ = err.error_of(exc, "ElectLeaders")
        return codec.make(module.ElectLeadersResponse, error_code=code,
                          replica_election_results=())
    results: list[tuple[str, int, int, str | None]]
    if getattr(body, "election_type", PREFERRED) != PREFERRED:
        results = [(t, p, err.INVALID_REQUEST, "unclean elections are not offered: Raft "
                    "elects only a replica that holds every committed record")
                   for t, p in wanted or []]
    else:
        timeout_s = max(codec.ms(body.timeout), 1) / 1000
        results = [_codes(r) for r in await elect_leaders(admin.cluster, forwarder, wanted,
                                                           timeout_s)]
    topics: dict[str, list[Any]] = {}
    for topic, partition, code, message in results:
        topics.setdefault(topic, []).append(codec.nested(
            module, "PartitionResult", partition_id=partition, error_code=code,
            error_message=message))
    return codec.make(module.ElectLeadersResponse, error_code=err.NONE,
                      replica_election_results=tuple(
                          codec.nested(module, "ReplicaElectionResult", topic=t,
                                       partition_result=tuple(ps))
                          for t, ps in topics.items()))


def _codes(r: ElectionResult) -> tuple[str, int, int, str | None]:
    if r.outcome == Outcome.ELECTED:
        return r.topic, r.partition, err.NONE, None
    if r.outcome == Outcome.ALREADY_PREFERRED:
        return r.topic, r.partition, ELECTION_NOT_NEEDED, "the preferred replica leads already"
    assert r.error is not None
    return r.topic, r.partition, err.kafka_code(r.error.reason), r.error.message
