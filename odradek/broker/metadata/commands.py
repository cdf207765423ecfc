"""The metadata log's commands.

Each command is a frozen dataclass; `encode()` gives compact JSON with a "type" field and
`decode_command()` turns those bytes back into the same command, raising ValueError (with
the reason) on anything else. Commands carry facts, not requests: the controller validates a
user's request against the image before it proposes the command, and `image.apply` ignores a
command that no longer makes sense when it is applied.

Configs are stored as a sorted tuple of (name, value) pairs so that commands stay hashable;
`freeze_configs` builds one from a mapping and `configs_dict()` gives a dict back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from odradek.broker.metadata._fields import Fields
from odradek.broker.metadata.security import SECURITY_DECODERS, SecurityCommand

Configs = tuple[tuple[str, str], ...]
Assignments = tuple[tuple[int, ...], ...]


def freeze_configs(configs: Mapping[str, str] | Configs) -> Configs:
    """A mapping (or pairs) as the sorted tuple of pairs that commands store."""
    pairs = configs.items() if isinstance(configs, Mapping) else configs
    return tuple(sorted((str(k), str(v)) for k, v in pairs))


def _freeze_assignments(assignments: Any) -> Assignments:
    return tuple(tuple(replicas) for replicas in assignments)


@dataclass(frozen=True)
class Endpoint:
    """Where clients of one named listener (other than the broker's own gRPC and Kafka
    listeners) reach a broker: Kafka's advertised.listeners, one entry."""

    name: str
    host: str
    port: int


Endpoints = tuple[Endpoint, ...]


def encode_endpoints(endpoints: Endpoints) -> dict[str, Any]:
    """{} when there are none, so that what brokers without listeners wrote stays the same."""
    return {"endpoints": {e.name: [e.host, e.port] for e in endpoints}} if endpoints else {}


def decode_endpoints(context: str, obj: Mapping[str, Any]) -> Endpoints:
    raw = obj.get("endpoints", {})
    if not isinstance(raw, dict):
        raise ValueError(f"{context}: field 'endpoints' must be an object, got {raw!r}"[:200])
    out = []
    for name, value in sorted(raw.items()):
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
                and isinstance(value[1], int) and not isinstance(value[1], bool)):
            raise ValueError(f"{context}: endpoint {name!r} must be [host, port], "
                             f"got {value!r}"[:200])
        out.append(Endpoint(name, value[0], value[1]))
    return tuple(out)


@dataclass(frozen=True)
class RegisterBroker:
    """A broker joins (or re-joins, possibly at a new address)."""

    TYPE: ClassVar[str] = "register_broker"
    broker_id: int
    host: str
    port: int
    rack: str | None = None
    # Where Kafka clients reach it (same host); 0: no Kafka listener. Left out when 0, so
    # what brokers without it wrote, and read, stays the same.
    kafka_port: int = 0
    endpoints: Endpoints = ()  # its further listeners, sorted by name

    def encode(self) -> bytes:
        extra = {"kafka_port": self.kafka_port} if self.kafka_port else {}
        return _dump(self.TYPE, {"broker_id": self.broker_id, "host": self.host,
                                 "port": self.port, "rack": self.rack, **extra,
                                 **encode_endpoints(self.endpoints)})


@dataclass(frozen=True)
class UnregisterBroker:
    """A broker leaves the cluster for good."""

    TYPE: ClassVar[str] = "unregister_broker"
    broker_id: int

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"broker_id": self.broker_id})


@dataclass(frozen=True)
class SetBrokerDraining:
    """A draining broker gets no new replicas; the controller moves its replicas away."""

    TYPE: ClassVar[str] = "set_broker_draining"
    broker_id: int
    draining: bool

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"broker_id": self.broker_id, "draining": self.draining})


@dataclass(frozen=True)
class CreateTopic:
    """A topic with one replica list per partition (first replica = preferred leader)."""

    TYPE: ClassVar[str] = "create_topic"
    name: str
    topic_id: str
    assignments: Assignments
    configs: Configs = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "assignments", _freeze_assignments(self.assignments))
        object.__setattr__(self, "configs", freeze_configs(self.configs))

    def configs_dict(self) -> dict[str, str]:
        return dict(self.configs)

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"name": self.name, "topic_id": self.topic_id,
                                 "assignments": self.assignments,
                                 "configs": dict(self.configs)})


@dataclass(frozen=True)
class DeleteTopic:
    TYPE: ClassVar[str] = "delete_topic"
    name: str

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"name": self.name})


@dataclass(frozen=True)
class AlterClusterConfigs:
    """Replaces the cluster-wide topic config defaults (the complete new set): Kafka's
    dynamic cluster-default broker configs. They lie over every broker's --config defaults
    and apply to every topic that does not set them, with no restart."""

    TYPE: ClassVar[str] = "alter_cluster_configs"
    configs: Configs

    def __post_init__(self) -> None:
        object.__setattr__(self, "configs", freeze_configs(self.configs))

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"configs": dict(self.configs)})


@dataclass(frozen=True)
class AlterTopicConfigs:
    """Replaces a topic's config overrides with `configs` (the complete new set)."""

    TYPE: ClassVar[str] = "alter_topic_configs"
    name: str
    configs: Configs

    def __post_init__(self) -> None:
        object.__setattr__(self, "configs", freeze_configs(self.configs))

    def configs_dict(self) -> dict[str, str]:
        return dict(self.configs)

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"name": self.name, "configs": dict(self.configs)})


@dataclass(frozen=True)
class CreatePartitions:
    """Adds partitions to a topic; `new_assignments` lists the added partitions only."""

    TYPE: ClassVar[str] = "create_partitions"
    name: str
    new_assignments: Assignments

    def __post_init__(self) -> None:
        object.__setattr__(self, "new_assignments", _freeze_assignments(self.new_assignments))

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"name": self.name, "new_assignments": self.new_assignments})


@dataclass(frozen=True)
class ReassignPartition:
    """Sets a partition's target replica list. The partition's Raft group then changes its
    membership one server at a time (see placement.reassignment_steps) and reports each
    committed change with PartitionReplicas. A target equal to the current replicas
    cancels a reassignment in progress."""

    TYPE: ClassVar[str] = "reassign_partition"
    topic: str
    partition: int
    replicas: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "replicas", tuple(self.replicas))

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"topic": self.topic, "partition": self.partition,
                                 "replicas": self.replicas})


@dataclass(frozen=True)
class PartitionLeader:
    """A partition's leader reports its election (term = its Raft term). When topic_id is
    set, the report is ignored unless it matches: a report about a deleted topic must not
    land on a new topic of the same name."""

    TYPE: ClassVar[str] = "partition_leader"
    topic: str
    partition: int
    leader: int
    term: int
    topic_id: str | None = None

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"topic": self.topic, "partition": self.partition,
                                 "leader": self.leader, "term": self.term,
                                 "topic_id": self.topic_id})


@dataclass(frozen=True)
class LeaderReport:
    """One partition's election as its new leader reports it (see PartitionLeader)."""

    topic: str
    partition: int
    term: int
    topic_id: str | None = None

    def fields(self) -> dict[str, object]:
        return {"topic": self.topic, "partition": self.partition, "term": self.term,
                "topic_id": self.topic_id}


@dataclass(frozen=True)
class PartitionLeaders:
    """The elections a broker won, many partitions to one command: PartitionLeader's
    rules per report. A topic of 1,000 partitions made 1,000 commands of PartitionLeader,
    each a proposal of its own, and the controller fell minutes behind them."""

    TYPE: ClassVar[str] = "partition_leaders"
    leader: int
    reports: tuple[LeaderReport, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "reports", tuple(self.reports))

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"leader": self.leader,
                                 "reports": [r.fields() for r in self.reports]})


def _decode_leaders(f: Fields) -> PartitionLeaders:
    reports = []
    for raw in f.get_list("reports"):
        r = Fields(f"{f.context} report", raw)
        reports.append(LeaderReport(r.get_str("topic"), r.get_int("partition"),
                                    r.get_int("term"), r.get_opt_str("topic_id")))
    return PartitionLeaders(f.get_int("leader"), tuple(reports))


@dataclass(frozen=True)
class InSyncReport:
    """One partition's in-sync replicas as its leader saw them in Raft term `term`."""

    topic: str
    partition: int
    term: int
    in_sync: tuple[int, ...]
    topic_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_sync", tuple(self.in_sync))

    def fields(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "term": self.term,
                "in_sync": self.in_sync, "topic_id": self.topic_id}


@dataclass(frozen=True)
class PartitionsInSync:
    """A leader reports which replicas of the partitions it leads are in sync (Kafka's
    AlterPartition), so that every broker answers metadata with the same in-sync set, not
    only the leader. A report counts only for partitions whose recorded leader and term
    are the reporter's: a deposed leader's late report changes nothing."""

    TYPE: ClassVar[str] = "partitions_in_sync"
    leader: int
    reports: tuple[InSyncReport, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "reports", tuple(self.reports))

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"leader": self.leader,
                                 "reports": [r.fields() for r in self.reports]})


def _decode_in_sync(f: Fields) -> PartitionsInSync:
    reports = []
    for raw in f.get_list("reports"):
        r = Fields(f"{f.context} report", raw)
        reports.append(InSyncReport(r.get_str("topic"), r.get_int("partition"),
                                    r.get_int("term"), r.get_ints("in_sync"),
                                    r.get_opt_str("topic_id")))
    return PartitionsInSync(f.get_int("leader"), tuple(reports))


@dataclass(frozen=True)
class PartitionReplicas:
    """A partition's leader reports a committed membership change of its Raft group:
    `replicas` is the new voter set, `config_offset` the offset of the configuration entry
    in the partition's log (reports with an offset not above the recorded one are stale).
    When the replicas reach the target, the reassignment is complete."""

    TYPE: ClassVar[str] = "partition_replicas"
    topic: str
    partition: int
    replicas: tuple[int, ...]
    config_offset: int
    topic_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "replicas", tuple(self.replicas))

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"topic": self.topic, "partition": self.partition,
                                 "replicas": self.replicas, "config_offset": self.config_offset,
                                 "topic_id": self.topic_id})


@dataclass(frozen=True)
class AllocateProducerIds:
    """Reserves the next `count` producer ids for a broker, which hands them out to
    idempotent producers without a name (one command per block, as in Kafka's KIP-730)."""

    TYPE: ClassVar[str] = "allocate_producer_ids"
    broker_id: int
    count: int
    # Unique per proposal: the broker uses a block only when the command applied carries
    # its own request's id (the offset it was given may hold another command: see
    # ClusterNode.propose_tracked).
    request_id: str = ""

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"broker_id": self.broker_id, "count": self.count,
                                 "request_id": self.request_id})


@dataclass(frozen=True)
class InitNamedProducer:
    """A producer with a stable name (Kafka's transactional.id) starts: it keeps the
    name's producer id and gets the next epoch, which fences every older instance."""

    TYPE: ClassVar[str] = "init_named_producer"
    name: str
    request_id: str = ""  # as AllocateProducerIds.request_id
    # An instance initialising again names the identity it had (-1: a new instance): the
    # epoch moves on only while that identity is still the name's current one.
    expected_id: int = -1
    expected_epoch: int = -1
    # The proposing broker's wall clock: when the name was last used (its expiry counts
    # from there; 0 from versions before expiry).
    at_ms: int = 0

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"name": self.name, "request_id": self.request_id,
                                 "expected_id": self.expected_id,
                                 "expected_epoch": self.expected_epoch, "at_ms": self.at_ms})


@dataclass(frozen=True)
class TouchNamedProducer:
    """A named producer wrote (seen by a partition leader's broker): its name is in use
    at `at_ms`, so it does not expire while the same instance keeps writing."""

    TYPE: ClassVar[str] = "touch_named_producer"
    name: str
    producer_id: int
    at_ms: int

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"name": self.name, "producer_id": self.producer_id,
                                 "at_ms": self.at_ms})


@dataclass(frozen=True)
class ExpireNamedProducers:
    """The controller forgets names last used before `idle_before_ms` (Kafka's
    transactional.id.expiration.ms); a name used since it was proposed stays."""

    TYPE: ClassVar[str] = "expire_named_producers"
    names: tuple[str, ...]
    idle_before_ms: int

    def encode(self) -> bytes:
        return _dump(self.TYPE, {"names": list(self.names),
                                 "idle_before_ms": self.idle_before_ms})


Command = (
    RegisterBroker
    | UnregisterBroker
    | SetBrokerDraining
    | CreateTopic
    | DeleteTopic
    | AlterTopicConfigs
    | AlterClusterConfigs
    | CreatePartitions
    | ReassignPartition
    | PartitionLeader
    | PartitionReplicas
    | PartitionsInSync
    | PartitionLeaders
    | SecurityCommand
    | AllocateProducerIds
    | InitNamedProducer
    | TouchNamedProducer
    | ExpireNamedProducers
)


def _dump(type_: str, fields: dict[str, Any]) -> bytes:
    return json.dumps({"type": type_, **fields}, separators=(",", ":"),
                      ensure_ascii=False).encode()


# --- decoding -------------------------------------------------------------------------


def _strs(items: list[Any]) -> list[str]:
    if not all(isinstance(x, str) for x in items):
        raise ValueError(f"expected a list of strings, got {items!r}"[:200])
    return items


_DECODERS: dict[str, Callable[[Fields], Command]] = {
    RegisterBroker.TYPE: lambda f: RegisterBroker(
        f.get_int("broker_id"), f.get_str("host"), f.get_int("port"), f.get_opt_str("rack"),
        f.get_int_or("kafka_port", 0), decode_endpoints(f.context, f.obj)),
    UnregisterBroker.TYPE: lambda f: UnregisterBroker(f.get_int("broker_id")),
    SetBrokerDraining.TYPE: lambda f: SetBrokerDraining(
        f.get_int("broker_id"), f.get_bool("draining")),
    CreateTopic.TYPE: lambda f: CreateTopic(
        f.get_str("name"), f.get_str("topic_id"), f.get_int_lists("assignments"),
        freeze_configs(f.get_str_map("configs"))),
    DeleteTopic.TYPE: lambda f: DeleteTopic(f.get_str("name")),
    AlterTopicConfigs.TYPE: lambda f: AlterTopicConfigs(
        f.get_str("name"), freeze_configs(f.get_str_map("configs"))),
    AlterClusterConfigs.TYPE: lambda f: AlterClusterConfigs(
        freeze_configs(f.get_str_map("configs"))),
    CreatePartitions.TYPE: lambda f: CreatePartitions(
        f.get_str("name"), f.get_int_lists("new_assignments")),
    ReassignPartition.TYPE: lambda f: ReassignPartition(
        f.get_str("topic"), f.get_int("partition"), f.get_ints("replicas")),
    PartitionLeader.TYPE: lambda f: PartitionLeader(
        f.get_str("topic"), f.get_int("partition"), f.get_int("leader"), f.get_int("term"),
        f.get_opt_str("topic_id")),
    PartitionReplicas.TYPE: lambda f: PartitionReplicas(
        f.get_str("topic"), f.get_int("partition"), f.get_ints("replicas"),
        f.get_int("config_offset"), f.get_opt_str("topic_id")),
    PartitionsInSync.TYPE: _decode_in_sync,
    PartitionLeaders.TYPE: _decode_leaders,
    AllocateProducerIds.TYPE: lambda f: AllocateProducerIds(
        f.get_int("broker_id"), f.get_int("count"), f.get_str_or("request_id", "")),
    InitNamedProducer.TYPE: lambda f: InitNamedProducer(
        f.get_str("name"), f.get_str_or("request_id", ""), f.get_int_or("expected_id", -1),
        f.get_int_or("expected_epoch", -1), f.get_int_or("at_ms", 0)),
    TouchNamedProducer.TYPE: lambda f: TouchNamedProducer(
        f.get_str("name"), f.get_int("producer_id"), f.get_int("at_ms")),
    ExpireNamedProducers.TYPE: lambda f: ExpireNamedProducers(
        tuple(_strs(f.get_list("names"))), f.get_int("idle_before_ms")),
}
_DECODERS.update(SECURITY_DECODERS)  # users and ACLs: metadata/security.py

COMMAND_TYPES: frozenset[str] = frozenset(_DECODERS)


def decode_command(data: bytes) -> Command:
    """The command that `encode()` produced; ValueError on anything else (bad JSON, not an
    object, unknown "type", a missing field or a field of the wrong type). Fields that this
    version does not know are ignored, so a later version may add optional ones."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"metadata command is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"metadata command must be a JSON object, got {type(obj).__name__}")
    type_ = obj.get("type")
    if not isinstance(type_, str):
        raise ValueError("metadata command has no string field 'type'")
    decoder = _DECODERS.get(type_)
    if decoder is None:
        raise ValueError(f"unknown metadata command type {type_!r}")
    return decoder(Fields(f"metadata command {type_!r}", obj))
