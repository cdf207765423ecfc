"""Checks of a user's request against the metadata image, made by the controller before it
proposes a command. Each raises MetadataError with a machine-readable `reason` and a
message that names what was wrong. Topic-name syntax and config values are checked
elsewhere (odradek.broker.names, the storage configs), not here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from odradek.broker.metadata.image import MetadataImage, PartitionInfo, TopicInfo
from odradek.broker.reasons import Reason


class MetadataError(Exception):
    """A request the image cannot satisfy. `reason` is one of Reason (a str), `message`
    is for people, `metadata` adds context (topic, partition, broker) for error details."""

    def __init__(self, reason: Reason, message: str,
                 metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata = metadata or {}

    def __repr__(self) -> str:
        return f"MetadataError({self.reason.value}, {self.message!r})"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _available_count(image: MetadataImage) -> tuple[int, int]:
    available = len(image.available_brokers())
    return available, len(image.brokers) - available


def _check_rf(image: MetadataImage, topic: str, replication_factor: int) -> None:
    if replication_factor < 1:
        raise MetadataError(
            Reason.INVALID_REPLICATION_FACTOR,
            f"replication factor must be at least 1, got {replication_factor} "
            f"(topic {topic!r})", {"topic": topic})
    available, draining = _available_count(image)
    if replication_factor > available:
        note = f", {_plural(draining, 'draining broker')} excluded" if draining else ""
        raise MetadataError(
            Reason.INVALID_REPLICATION_FACTOR,
            f"replication factor {replication_factor} for topic {topic!r} is larger than the "
            f"{_plural(available, 'broker')} available{note}", {"topic": topic})


def require_topic(image: MetadataImage, name: str) -> TopicInfo:
    info = image.topic(name)
    if info is None:
        raise MetadataError(Reason.UNKNOWN_TOPIC_OR_PARTITION,
                            f"topic {name!r} does not exist", {"topic": name})
    return info


def require_partition(image: MetadataImage, topic: str, partition: int) -> PartitionInfo:
    info = require_topic(image, topic)
    part = image.partition(topic, partition)
    if part is None:
        raise MetadataError(
            Reason.UNKNOWN_TOPIC_OR_PARTITION,
            f"partition {partition} of topic {topic!r} does not exist (the topic has "
            f"{_plural(len(info.partitions), 'partition')})",
            {"topic": topic, "partition": str(partition)})
    return part


def validate_create_topic(
    image: MetadataImage,
    name: str,
    partitions: int,
    replication_factor: int,
    assignments: Sequence[Sequence[int]] | None = None,
) -> None:
    """A new topic: the name is free, partitions >= 1, 1 <= RF <= available brokers. With
    an explicit `assignments` (one replica list per partition), those lists are checked
    instead of the RF: as many as `partitions`, all of one length, valid replica lists."""
    if name in image.topics:
        raise MetadataError(Reason.TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists",
                            {"topic": name})
    if partitions < 1:
        raise MetadataError(
            Reason.INVALID_PARTITIONS,
            f"number of partitions must be at least 1, got {partitions} (topic {name!r})",
            {"topic": name})
    if assignments is None:
        _check_rf(image, name, replication_factor)
        return
    _check_assignments(image, name, 0, partitions, assignments)


def validate_create_partitions(
    image: MetadataImage,
    name: str,
    total: int,
    assignments: Sequence[Sequence[int]] | None = None,
) -> None:
    """Growing a topic to `total` partitions: the topic exists, `total` is larger than its
    current count, and its replication factor fits the available brokers (or the explicit
    `assignments` for the added partitions are valid replica lists of that length)."""
    info = require_topic(image, name)
    current = len(info.partitions)
    if total <= current:
        raise MetadataError(
            Reason.INVALID_PARTITIONS,
            f"topic {name!r} has {_plural(current, 'partition')}; the new total must be "
            f"larger, got {total} (partitions can be added, never removed)", {"topic": name})
    if assignments is None:
        _check_rf(image, name, info.replication_factor)
        return
    _check_assignments(image, name, current, total - current, assignments)
    rf = info.replication_factor
    if assignments and len(assignments[0]) != rf:
        raise MetadataError(
            Reason.INVALID_REPLICA_ASSIGNMENT,
            f"topic {name!r} has replication factor {rf}; the replica lists of new "
            f"partitions must have {_plural(rf, 'replica')}, got {len(assignments[0])}",
            {"topic": name})


def _check_assignments(image: MetadataImage, name: str, first: int, count: int,
                       assignments: Sequence[Sequence[int]]) -> None:
    if len(assignments) != count:
        raise MetadataError(
            Reason.INVALID_REPLICA_ASSIGNMENT,
            f"topic {name!r}: {_plural(count, 'partition')} to create but "
            f"{_plural(len(assignments), 'replica list')} given", {"topic": name})
    for i, replicas in enumerate(assignments):
        _check_replica_list(image, name, first + i, replicas, allowed_draining=())
    sizes = sorted({len(r) for r in assignments})
    if len(sizes) > 1:
        raise MetadataError(
            Reason.INVALID_REPLICA_ASSIGNMENT,
            f"topic {name!r}: every partition must have the same number of replicas, got "
            f"replica lists of sizes {', '.join(map(str, sizes))}", {"topic": name})


def _check_replica_list(image: MetadataImage, topic: str, partition: int,
                        replicas: Sequence[int], allowed_draining: Sequence[int]) -> None:
    where = f"partition {partition} of topic {topic!r}"
    meta = {"topic": topic, "partition": str(partition)}
    if not replicas:
        raise MetadataError(Reason.INVALID_REPLICA_ASSIGNMENT,
                            f"replica list for {where} is empty", meta)
    dups = sorted(b for b, n in Counter(replicas).items() if n > 1)
    if dups:
        raise MetadataError(
            Reason.INVALID_REPLICA_ASSIGNMENT,
            f"replica list {list(replicas)} for {where} names broker {dups[0]} more than once",
            meta)
    for b in replicas:
        broker = image.brokers.get(b)
        if broker is None:
            raise MetadataError(
                Reason.BROKER_NOT_AVAILABLE,
                f"replica list {list(replicas)} for {where} names broker {b}, which is not "
                f"registered", {**meta, "broker": str(b)})
        if broker.draining and b not in allowed_draining:
            raise MetadataError(
                Reason.BROKER_NOT_AVAILABLE,
                f"replica list {list(replicas)} for {where} names broker {b}, which is "
                f"draining and takes no new replicas", {**meta, "broker": str(b)})


def validate_reassignment(image: MetadataImage, topic: str, partition: int,
                          replicas: Sequence[int]) -> None:
    """A new replica list for a partition: the partition exists; the list is non-empty,
    has no duplicate, and names registered brokers only, none of them draining unless it
    already holds a replica of the partition."""
    part = require_partition(image, topic, partition)
    _check_replica_list(image, topic, partition, replicas,
                        allowed_draining=part.replicas + (part.target_replicas or ()))


def validate_drain(image: MetadataImage, broker_id: int) -> None:
    """Draining a broker: it is registered, and every partition with a replica on it can
    keep its replication factor on the other available brokers."""
    if broker_id not in image.brokers:
        raise MetadataError(Reason.BROKER_NOT_AVAILABLE,
                            f"broker {broker_id} is not registered", {"broker": str(broker_id)})
    others = [b.id for b in image.available_brokers() if b.id != broker_id]
    for topic, index, part in image.iter_partitions():
        current = part.effective_replicas
        if broker_id in current and not [b for b in others if b not in current]:
            raise MetadataError(
                Reason.INVALID_REPLICATION_FACTOR,
                f"cannot drain broker {broker_id}: partition {index} of topic {topic!r} has "
                f"replication factor {len(current)} and only "
                f"{_plural(len(others), 'other broker')} available to hold its replicas",
                {"broker": str(broker_id), "topic": topic, "partition": str(index)})


def validate_delete_topic(image: MetadataImage, name: str) -> None:
    require_topic(image, name)


def validate_alter_topic_configs(image: MetadataImage, name: str) -> None:
    require_topic(image, name)
