"""What Admin answers with: plain, immutable values (the field names are the protocol's,
so code that read the old protobuf answers reads these the same way). `to_dict` gives
any of them as plain data, for JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from odradek.v1 import groups_pb2 as gpb
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import security_pb2 as spb

TP = tuple[str, int]


def to_dict(value: Any) -> dict[str, Any]:
    """A value of this module as plain data (tuples become lists)."""
    return _plain(dataclasses.asdict(value))  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# -- topics and the cluster ----------------------------------------------------------------

@dataclass(frozen=True)
class PartitionInfo:
    partition: int
    leader: int  # -1: none
    replicas: tuple[int, ...]
    in_sync_replicas: tuple[int, ...]
    leader_epoch: int
    target_replicas: tuple[int, ...] = ()  # while a reassignment runs

    @classmethod
    def from_pb(cls, m: pb.PartitionInfo) -> PartitionInfo:
        return cls(m.partition, m.leader, tuple(m.replicas), tuple(m.in_sync_replicas),
                   m.leader_epoch, tuple(m.target_replicas))


@dataclass(frozen=True)
class PartitionState:
    info: PartitionInfo
    log_start_offset: int
    high_watermark: int
    size_bytes: int
    segments: int

    @classmethod
    def from_pb(cls, m: pb.PartitionState) -> PartitionState:
        return cls(PartitionInfo.from_pb(m.info), m.log_start_offset, m.high_watermark,
                   m.size_bytes, m.segments)


@dataclass(frozen=True)
class ConfigEntry:
    name: str
    value: str
    is_default: bool


@dataclass(frozen=True)
class TopicDescription:
    name: str
    topic_id: str
    internal: bool
    replication_factor: int
    partitions: tuple[PartitionState, ...]
    configs: tuple[ConfigEntry, ...]

    @classmethod
    def from_pb(cls, m: pb.TopicDescription) -> TopicDescription:
        return cls(m.name, m.topic_id, m.internal, m.replication_factor,
                   tuple(PartitionState.from_pb(p) for p in m.partitions),
                   tuple(ConfigEntry(c.name, c.value, c.is_default) for c in m.configs))


@dataclass(frozen=True)
class TopicSummary:
    name: str
    partitions: int
    replication_factor: int
    internal: bool

    @classmethod
    def from_pb(cls, m: pb.TopicSummary) -> TopicSummary:
        return cls(m.name, m.partitions, m.replication_factor, m.internal)


@dataclass(frozen=True)
class BrokerInfo:
    id: int
    host: str
    port: int
    rack: str


@dataclass(frozen=True)
class TopicMetadata:
    name: str
    partitions: tuple[PartitionInfo, ...]
    internal: bool


@dataclass(frozen=True)
class Metadata:
    cluster_id: str
    controller_id: int  # -1: none elected
    brokers: tuple[BrokerInfo, ...]
    topics: tuple[TopicMetadata, ...]

    @classmethod
    def from_pb(cls, m: pb.MetadataResponse) -> Metadata:
        return cls(m.cluster_id, m.controller_id,
                   tuple(BrokerInfo(b.id, b.host, b.port, b.rack) for b in m.brokers),
                   tuple(TopicMetadata(t.name, tuple(PartitionInfo.from_pb(p)
                                                     for p in t.partitions), t.internal)
                         for t in m.topics))


@dataclass(frozen=True)
class PartitionMove:
    topic: str
    partition: int
    from_replicas: tuple[int, ...]
    to_replicas: tuple[int, ...]


@dataclass(frozen=True)
class DrainPlan:
    """The moves a drain makes (or, validate_only, would make)."""
    moves: tuple[PartitionMove, ...]

    @classmethod
    def from_pb(cls, m: pb.DrainBrokerResponse) -> DrainPlan:
        return cls(tuple(PartitionMove(x.topic, x.partition, tuple(x.from_replicas),
                                       tuple(x.to_replicas)) for x in m.moves))


_OUTCOMES = {pb.ELECTION_OUTCOME_ELECTED: "elected",
             pb.ELECTION_OUTCOME_ALREADY_PREFERRED: "already preferred"}


@dataclass(frozen=True)
class ElectionResult:
    """A preferred-leader election's outcome: "elected", "already preferred" or "failed"
    (then reason and message say why); leader: after the call, -1 when unknown."""
    topic: str
    partition: int
    outcome: str
    leader: int
    reason: str = ""
    message: str = ""

    @classmethod
    def from_pb(cls, m: pb.ElectionResult) -> ElectionResult:
        return cls(m.topic, m.partition, _OUTCOMES.get(m.outcome, "failed"), m.leader,
                   m.error_reason, m.error_message)


@dataclass(frozen=True)
class BrokerConfig:
    """One setting of a broker; source: "default", "static" (its command line or
    environment) or "dynamic" (a cluster-wide default, Admin.alter_cluster_configs); a
    sensitive one's value is hidden (empty)."""
    name: str
    value: str
    source: str
    sensitive: bool
    documentation: str

    @classmethod
    def from_pb(cls, m: pb.BrokerConfig) -> BrokerConfig:
        source = {pb.CONFIG_SOURCE_DEFAULT: "default",
                  pb.CONFIG_SOURCE_STATIC: "static",
                  pb.CONFIG_SOURCE_DYNAMIC: "dynamic"}.get(m.source, "unknown")
        return cls(m.name, m.value, source, m.sensitive, m.documentation)


@dataclass(frozen=True)
class OffsetAnswer:
    """found: False when no record has a timestamp at or after the one asked for (offset is
    then the high watermark); timestamp_ms: the record's, for a timestamp lookup, else -1."""
    found: bool
    offset: int
    timestamp_ms: int

    @classmethod
    def from_pb(cls, m: pb.ListOffsetsResponse) -> OffsetAnswer:
        return cls(m.found, m.offset, m.timestamp_ms)


# -- users ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class UserDescription:
    name: str
    mechanism: str
    iterations: int

    @classmethod
    def from_pb(cls, m: spb.UserDescription) -> UserDescription:
        return cls(m.name, m.mechanism, m.iterations)


@dataclass(frozen=True)
class ProducerNameInfo:
    """A named producer (Kafka's transactional id): its current id and epoch, and when the
    metadata last saw it used (ms since the epoch; 0: not recorded)."""

    name: str
    producer_id: int
    producer_epoch: int
    last_used_ms: int

    @classmethod
    def from_pb(cls, m: pb.ProducerNameInfo) -> ProducerNameInfo:
        return cls(m.name, m.producer_id, m.producer_epoch, m.last_used_ms)


# -- consumer groups ------------------------------------------------------------------------

@dataclass(frozen=True)
class TopicPartitions:
    topic: str
    partitions: tuple[int, ...]


def _tps(items: Any) -> tuple[TopicPartitions, ...]:
    return tuple(TopicPartitions(t.topic, tuple(t.partitions)) for t in items)


@dataclass(frozen=True)
class GroupSummary:
    group_id: str
    state: str  # EMPTY, STABLE, RECONCILING
    members: int
    coordinator_id: int

    @classmethod
    def from_pb(cls, m: gpb.GroupSummary) -> GroupSummary:
        return cls(m.group_id, m.state, m.members, m.coordinator_id)


@dataclass(frozen=True)
class MemberDescription:
    member_id: str
    instance_id: str
    client_id: str
    topics: tuple[str, ...]
    assigned: tuple[TopicPartitions, ...]
    connected: bool
    revoking: tuple[TopicPartitions, ...]  # taken away, not yet acknowledged


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed_offset: int  # -1: none
    log_end_offset: int  # -1: unknown
    lag: int  # -1: unknown
    member_id: str


@dataclass(frozen=True)
class GroupDescription:
    group_id: str
    state: str
    generation: int
    strategy: str
    coordinator_id: int
    members: tuple[MemberDescription, ...]
    partitions: tuple[PartitionLag, ...]

    @classmethod
    def from_pb(cls, m: gpb.GroupDescription) -> GroupDescription:
        return cls(m.group_id, m.state, m.generation, m.strategy, m.coordinator_id,
                   tuple(MemberDescription(x.member_id, x.instance_id, x.client_id,
                                           tuple(x.topics), _tps(x.assigned), x.connected,
                                           _tps(x.revoking)) for x in m.members),
                   tuple(PartitionLag(p.topic, p.partition, p.committed_offset,
                                      p.log_end_offset, p.lag, p.member_id)
                         for p in m.partitions))


@dataclass(frozen=True)
class CommittedOffset:
    topic: str
    partition: int
    offset: int
    commit_timestamp_ms: int

    @classmethod
    def from_pb(cls, m: gpb.CommittedOffset) -> CommittedOffset:
        return cls(m.topic, m.partition, m.offset, m.commit_timestamp_ms)


@dataclass(frozen=True)
class OffsetChange:
    topic: str
    partition: int
    offset: int
    previous: int  # -1: none committed

    @classmethod
    def from_pb(cls, m: gpb.OffsetChange) -> OffsetChange:
        return cls(m.topic, m.partition, m.offset, m.previous)
