"""The metadata image: the cluster's state after applying the metadata log up to an offset.

An image is treated as immutable: `apply` returns a new image and shares whatever did not
change with the old one, so a reader may keep an image while the log moves on. Do not
mutate the dicts of an image in place.

`apply` is deterministic and total. A command that no longer makes sense when it is
applied (create a topic that exists, delete one that does not, a leader report older than
the one recorded, a reassignment of a deleted topic...) changes nothing but `last_offset`:
user-facing validation happens before the controller proposes (see validation.py), and the
log may hold commands proposed against an older image.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from odradek.broker.metadata._fields import Fields
from odradek.broker.metadata.commands import (
    AlterClusterConfigs,
    AlterTopicConfigs,
    Assignments,
    Command,
    CreatePartitions,
    CreateTopic,
    DeleteTopic,
    Endpoints,
    InSyncReport,
    LeaderReport,
    PartitionLeader,
    PartitionLeaders,
    PartitionReplicas,
    PartitionsInSync,
    ReassignPartition,
    RegisterBroker,
    SetBrokerDraining,
    UnregisterBroker,
    decode_endpoints,
    encode_endpoints,
)
from odradek.broker.metadata.producer_ids import (
    PRODUCER_COMMANDS,
    ProducerIds,
    apply_producer_command,
    decode_producer_ids,
    encode_producer_ids,
)
from odradek.broker.metadata.security import (
    SECURITY_COMMANDS,
    SecurityState,
    apply_security,
    decode_security,
    encode_security,
)

NO_LEADER = -1
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class BrokerInfo:
    id: int
    host: str
    port: int
    rack: str | None = None
    draining: bool = False
    kafka_port: int = 0  # 0: no Kafka listener
    endpoints: Endpoints = ()  # further listeners (RegisterBroker.endpoints)


def registered_as(info: BrokerInfo | None, cmd: RegisterBroker) -> bool:
    """Does the image already know the broker as `cmd` would register it?"""
    return info is not None and (info.host, info.port, info.rack, info.kafka_port,
                                 info.endpoints) == (cmd.host, cmd.port, cmd.rack,
                                                     cmd.kafka_port, cmd.endpoints)


@dataclass(frozen=True)
class PartitionInfo:
    """One partition. `replicas` is its Raft group's current voter set (first = preferred
    leader); `target_replicas` is set while a reassignment is in progress. `leader` is -1
    when unknown; `leader_term` is the Raft term of the last leader report (-1: none);
    `config_offset` the partition-log offset of the last membership change reported;
    `in_sync` the in-sync replicas the leader last reported in its term (None: no report
    yet from this leader)."""

    replicas: tuple[int, ...]
    target_replicas: tuple[int, ...] | None = None
    leader: int = NO_LEADER
    leader_term: int = -1
    config_offset: int = -1
    in_sync: tuple[int, ...] | None = None

    @property
    def effective_replicas(self) -> tuple[int, ...]:
        """The replica set this partition is heading for: the target when reassigning."""
        return self.replicas if self.target_replicas is None else self.target_replicas

    @property
    def preferred_leader(self) -> int:
        return self.replicas[0]


@dataclass(frozen=True)
class TopicInfo:
    name: str
    topic_id: str
    partitions: tuple[PartitionInfo, ...]
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def replication_factor(self) -> int:
        return len(self.partitions[0].effective_replicas) if self.partitions else 0


@dataclass(frozen=True)
class MetadataImage:
    brokers: dict[int, BrokerInfo] = field(default_factory=dict)
    topics: dict[str, TopicInfo] = field(default_factory=dict)
    last_offset: int = -1
    # Users and ACLs (metadata/security.py).
    security: SecurityState = field(default_factory=SecurityState)
    producers: ProducerIds = field(default_factory=ProducerIds)
    # Cluster-wide topic config defaults (AlterClusterConfigs), over the brokers' own.
    cluster_configs: dict[str, str] = field(default_factory=dict)

    # --- queries (all results are in a deterministic order) ---

    def topic(self, name: str) -> TopicInfo | None:
        return self.topics.get(name)

    def topic_by_id(self, topic_id: str) -> TopicInfo | None:
        for info in self.topics.values():
            if info.topic_id == topic_id:
                return info
        return None

    def partition(self, topic: str, partition: int) -> PartitionInfo | None:
        info = self.topics.get(topic)
        if info is None or not 0 <= partition < len(info.partitions):
            return None
        return info.partitions[partition]

    def iter_partitions(self) -> Iterable[tuple[str, int, PartitionInfo]]:
        """Every partition as (topic, index, info), topics sorted by name."""
        for name in sorted(self.topics):
            for index, part in enumerate(self.topics[name].partitions):
                yield name, index, part

    def available_brokers(self) -> list[BrokerInfo]:
        """Registered brokers that are not draining, by id: where new replicas may go."""
        return [b for _, b in sorted(self.brokers.items()) if not b.draining]

    def replicas_of(self, broker_id: int, include_targets: bool = False) -> list[tuple[str, int]]:
        """(topic, partition) of every partition with a replica on the broker, sorted. With
        include_targets, partitions being reassigned onto the broker count too."""
        out = []
        for name, index, part in self.iter_partitions():
            if broker_id in part.replicas or (
                    include_targets and part.target_replicas is not None
                    and broker_id in part.target_replicas):
                out.append((name, index))
        return out

    def leader_counts(self) -> dict[int, int]:
        """Partitions currently led, per broker (brokers leading none are absent)."""
        counts: dict[int, int] = {}
        for _, _, part in self.iter_partitions():
            if part.leader != NO_LEADER:
                counts[part.leader] = counts.get(part.leader, 0) + 1
        return counts

    def replica_counts(self) -> dict[int, int]:
        """Replicas per registered broker (0 included), counting the target replica set of
        partitions being reassigned: the load placement should plan with."""
        counts = dict.fromkeys(sorted(self.brokers), 0)
        for _, _, part in self.iter_partitions():
            for b in part.effective_replicas:
                counts[b] = counts.get(b, 0) + 1
        return counts

    def preferred_leader_counts(self) -> dict[int, int]:
        """Partitions whose (target) first replica is the broker, per registered broker."""
        counts = dict.fromkeys(sorted(self.brokers), 0)
        for _, _, part in self.iter_partitions():
            b = part.effective_replicas[0]
            counts[b] = counts.get(b, 0) + 1
        return counts


# --- apply ----------------------------------------------------------------------------


def apply(image: MetadataImage, offset: int, command: Command) -> MetadataImage:
    """The image after the command at `offset` of the metadata log. An entry at or below
    `image.last_offset` was applied already and returns the image as it is, so replaying a
    log over a snapshot is safe."""
    if offset <= image.last_offset:
        return image
    if isinstance(command, SECURITY_COMMANDS):
        return replace(image, security=apply_security(image.security, command),
                       last_offset=offset)
    if isinstance(command, AlterClusterConfigs):
        return replace(image, cluster_configs=dict(command.configs), last_offset=offset)
    if isinstance(command, PRODUCER_COMMANDS):
        producers = apply_producer_command(image.producers, offset, command)
        return replace(image, last_offset=offset, producers=producers or image.producers)
    changed = _apply(image, command)
    if changed is None:
        return replace(image, last_offset=offset)
    brokers, topics = changed
    return replace(image, brokers=brokers, topics=topics, last_offset=offset)


def replay(image: MetadataImage, entries: Iterable[tuple[int, Command]]) -> MetadataImage:
    """Applies (offset, command) pairs in order."""
    for offset, command in entries:
        image = apply(image, offset, command)
    return image


_State = tuple[dict[int, BrokerInfo], dict[str, TopicInfo]]


def _well_formed(replicas: tuple[int, ...]) -> bool:
    return len(replicas) > 0 and len(set(replicas)) == len(replicas) and min(replicas) >= 0


def _well_formed_all(assignments: Assignments) -> bool:
    return len(assignments) > 0 and all(_well_formed(r) for r in assignments)


def _with_topic(image: MetadataImage, info: TopicInfo) -> _State:
    topics = dict(image.topics)
    topics[info.name] = info
    return image.brokers, topics


def _with_partition(image: MetadataImage, info: TopicInfo, index: int,
                    part: PartitionInfo) -> _State:
    parts = list(info.partitions)
    parts[index] = part
    return _with_topic(image, replace(info, partitions=tuple(parts)))


def _apply(image: MetadataImage, cmd: Command) -> _State | None:
    """New (brokers, topics), or None when the command changes nothing."""
    if isinstance(cmd, RegisterBroker):
        old = image.brokers.get(cmd.broker_id)
        if cmd.broker_id < 0:
            return None
        new = BrokerInfo(cmd.broker_id, cmd.host, cmd.port, cmd.rack,
                         old.draining if old is not None else False, cmd.kafka_port,
                         cmd.endpoints)
        if new == old:
            return None
        brokers = dict(image.brokers)
        brokers[cmd.broker_id] = new
        return brokers, image.topics

    if isinstance(cmd, UnregisterBroker):
        if cmd.broker_id not in image.brokers:
            return None
        brokers = dict(image.brokers)
        del brokers[cmd.broker_id]
        # A broker that left leads nothing; keep the term so older reports stay stale.
        topics = dict(image.topics)
        for name, led in image.topics.items():
            if any(p.leader == cmd.broker_id for p in led.partitions):
                parts = tuple(replace(p, leader=NO_LEADER) if p.leader == cmd.broker_id else p
                              for p in led.partitions)
                topics[name] = replace(led, partitions=parts)
        return brokers, topics

    if isinstance(cmd, SetBrokerDraining):
        old = image.brokers.get(cmd.broker_id)
        if old is None or old.draining == cmd.draining:
            return None
        brokers = dict(image.brokers)
        brokers[cmd.broker_id] = replace(old, draining=cmd.draining)
        return brokers, image.topics

    if isinstance(cmd, CreateTopic):
        if (cmd.name in image.topics or image.topic_by_id(cmd.topic_id) is not None
                or not _well_formed_all(cmd.assignments)):
            return None
        parts = tuple(PartitionInfo(replicas=r) for r in cmd.assignments)
        return _with_topic(image, TopicInfo(cmd.name, cmd.topic_id, parts, cmd.configs_dict()))

    if isinstance(cmd, DeleteTopic):
        if cmd.name not in image.topics:
            return None
        topics = dict(image.topics)
        del topics[cmd.name]
        return image.brokers, topics

    if isinstance(cmd, AlterTopicConfigs):
        info = image.topics.get(cmd.name)
        if info is None or info.configs == cmd.configs_dict():
            return None
        return _with_topic(image, replace(info, configs=cmd.configs_dict()))

    if isinstance(cmd, CreatePartitions):
        info = image.topics.get(cmd.name)
        if info is None or not _well_formed_all(cmd.new_assignments):
            return None
        added = tuple(PartitionInfo(replicas=r) for r in cmd.new_assignments)
        return _with_topic(image, replace(info, partitions=info.partitions + added))

    if isinstance(cmd, ReassignPartition):
        info = image.topics.get(cmd.topic)
        part = image.partition(cmd.topic, cmd.partition)
        if info is None or part is None or not _well_formed(cmd.replicas):
            return None
        if set(cmd.replicas) == set(part.replicas):
            # Same members (maybe another preferred leader): nothing to move, done at once.
            new_part = replace(part, replicas=cmd.replicas, target_replicas=None)
        else:
            new_part = replace(part, target_replicas=cmd.replicas)
        if new_part == part:
            return None
        return _with_partition(image, info, cmd.partition, new_part)

    if isinstance(cmd, PartitionLeader):
        info = image.topics.get(cmd.topic)
        part = image.partition(cmd.topic, cmd.partition)
        if (info is None or part is None or cmd.leader < 0 or cmd.term <= part.leader_term
                or (cmd.topic_id is not None and cmd.topic_id != info.topic_id)):
            return None
        return _with_partition(image, info, cmd.partition, replace(
            part, leader=cmd.leader, leader_term=cmd.term, in_sync=None))

    if isinstance(cmd, PartitionsInSync):
        return _apply_in_sync(image, cmd)

    if isinstance(cmd, PartitionLeaders):
        return _apply_leaders(image, cmd)

    if isinstance(cmd, PartitionReplicas):
        info = image.topics.get(cmd.topic)
        part = image.partition(cmd.topic, cmd.partition)
        if (info is None or part is None or not _well_formed(cmd.replicas)
                or cmd.config_offset <= part.config_offset
                or (cmd.topic_id is not None and cmd.topic_id != info.topic_id)):
            return None
        target = part.target_replicas
        if target is not None and set(target) == set(cmd.replicas):
            # The reassignment is complete; the target's order names the preferred leader.
            replicas, target = target, None
        else:
            replicas = _keep_order(part.replicas, cmd.replicas)
        return _with_partition(image, info, cmd.partition, replace(
            part, replicas=replicas, target_replicas=target, config_offset=cmd.config_offset))

    return None  # pragma: no cover - every Command type is handled above


def _apply_in_sync(image: MetadataImage, cmd: PartitionsInSync) -> _State | None:
    def update(part: PartitionInfo, r: InSyncReport) -> PartitionInfo | None:
        if (part.leader != cmd.leader or part.leader_term != r.term
                or cmd.leader not in r.in_sync or part.in_sync == r.in_sync):
            return None
        return replace(part, in_sync=r.in_sync)

    return _update_partitions(image, cmd.reports, update)


def _apply_leaders(image: MetadataImage, cmd: PartitionLeaders) -> _State | None:
    def update(part: PartitionInfo, r: LeaderReport) -> PartitionInfo | None:
        if cmd.leader < 0 or r.term <= part.leader_term:
            return None  # PartitionLeader's rule: only a later term's leader counts
        return replace(part, leader=cmd.leader, leader_term=r.term, in_sync=None)

    return _update_partitions(image, cmd.reports, update)


_Report = TypeVar("_Report", InSyncReport, LeaderReport)


def _update_partitions(image: MetadataImage, reports: Iterable[_Report],
                       update: Callable[[PartitionInfo, _Report], PartitionInfo | None]
                       ) -> _State | None:
    """Applies per-partition reports (topic, partition, topic_id) with one copy of each
    topic touched, however many of its partitions they name."""
    changed: dict[str, list[PartitionInfo]] = {}
    for r in reports:
        info = image.topics.get(r.topic)
        if info is None or (r.topic_id is not None and r.topic_id != info.topic_id):
            continue
        parts = changed.get(r.topic) or list(info.partitions)
        if not 0 <= r.partition < len(parts):
            continue
        new = update(parts[r.partition], r)
        if new is None:
            continue
        parts[r.partition] = new
        changed[r.topic] = parts
    if not changed:
        return None
    topics = dict(image.topics)
    for name, parts in changed.items():
        topics[name] = replace(topics[name], partitions=tuple(parts))
    return image.brokers, topics


def _keep_order(old: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, ...]:
    """`new` as a set, in the order of `old` for the members they share, then the rest of
    `new` in its order: membership changes do not reshuffle the preferred leader."""
    members = set(new)
    kept = tuple(b for b in old if b in members)
    seen = set(kept)
    return kept + tuple(b for b in new if b not in seen)


# --- snapshots ------------------------------------------------------------------------


def encode_snapshot(image: MetadataImage) -> bytes:
    """The whole image as compact JSON (keys and entries sorted: equal images give equal
    bytes)."""
    doc: dict[str, Any] = {
        "version": SNAPSHOT_VERSION,
        "last_offset": image.last_offset,
        "brokers": [
            {"id": b.id, "host": b.host, "port": b.port, "rack": b.rack, "draining": b.draining,
             **({"kafka_port": b.kafka_port} if b.kafka_port else {}),
             **encode_endpoints(b.endpoints)}
            for _, b in sorted(image.brokers.items())
        ],
        "topics": [
            {
                "name": t.name,
                "topic_id": t.topic_id,
                "configs": t.configs,
                "partitions": [
                    {"replicas": p.replicas, "target_replicas": p.target_replicas,
                     "leader": p.leader, "leader_term": p.leader_term,
                     "config_offset": p.config_offset, "in_sync": p.in_sync}
                    for p in t.partitions
                ],
            }
            for _, t in sorted(image.topics.items())
        ],
        "security": encode_security(image.security),
        "producers": encode_producer_ids(image.producers),
        **({"cluster_configs": image.cluster_configs} if image.cluster_configs else {}),
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def decode_snapshot(data: bytes) -> MetadataImage:
    """The image that `encode_snapshot` wrote; ValueError on anything else."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"metadata snapshot is not valid JSON: {exc}") from None
    top = Fields("metadata snapshot", doc)
    version = top.get_int("version")
    if version != SNAPSHOT_VERSION:
        raise ValueError(f"metadata snapshot version {version} is not supported "
                         f"(this broker reads version {SNAPSHOT_VERSION})")
    brokers: dict[int, BrokerInfo] = {}
    for raw in top.get_list("brokers"):
        f = Fields("metadata snapshot broker", raw)
        b = BrokerInfo(f.get_int("id"), f.get_str("host"), f.get_int("port"),
                       f.get_opt_str("rack"), f.get_bool("draining"),
                       f.get_int_or("kafka_port", 0), decode_endpoints(f.context, f.obj))
        if b.id in brokers:
            raise ValueError(f"metadata snapshot lists broker {b.id} twice")
        brokers[b.id] = b
    topics: dict[str, TopicInfo] = {}
    for raw in top.get_list("topics"):
        f = Fields("metadata snapshot topic", raw)
        name = f.get_str("name")
        if name in topics:
            raise ValueError(f"metadata snapshot lists topic {name!r} twice")
        parts = []
        for raw_part in f.get_list("partitions"):
            pf = Fields(f"metadata snapshot partition of topic {name!r}", raw_part)
            parts.append(PartitionInfo(
                replicas=pf.get_ints("replicas"),
                target_replicas=pf.get_opt_ints("target_replicas"),
                leader=pf.get_int("leader"),
                leader_term=pf.get_int("leader_term"),
                config_offset=pf.get_int("config_offset"),
                # Snapshots written before in-sync reports existed have none.
                in_sync=pf.get_opt_ints("in_sync") if "in_sync" in pf.obj else None,
            ))
        topics[name] = TopicInfo(name, f.get_str("topic_id"), tuple(parts),
                                 f.get_str_map("configs"))
    # Snapshots written before producer ids existed have no "producers".
    producers = (decode_producer_ids(doc["producers"]) if "producers" in doc
                 else ProducerIds())
    # Nor "cluster_configs" before those existed, or when there are none.
    cluster_configs = (top.get_str_map("cluster_configs") if "cluster_configs" in top.obj
                       else {})
    return MetadataImage(brokers=brokers, topics=topics, last_offset=top.get_int("last_offset"),
                         security=decode_security(top.obj.get("security")),
                         producers=producers, cluster_configs=cluster_configs)
