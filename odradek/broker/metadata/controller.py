"""The controller's decisions as pure functions: validate a request against the image and
return the commands to propose (in order). The caller proposes them to the metadata log;
nothing here does I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from odradek.broker.metadata.commands import (
    CreatePartitions,
    CreateTopic,
    ReassignPartition,
    SetBrokerDraining,
    freeze_configs,
)
from odradek.broker.metadata.image import MetadataImage
from odradek.broker.metadata.placement import assign_replicas, drain_plan
from odradek.broker.metadata.validation import (
    validate_create_partitions,
    validate_create_topic,
    validate_drain,
    validate_reassignment,
)


def plan_create_topic(
    image: MetadataImage,
    name: str,
    topic_id: str,
    partitions: int,
    replication_factor: int,
    configs: Mapping[str, str] | None = None,
    assignments: Sequence[Sequence[int]] | None = None,
) -> CreateTopic:
    """Validates and places a new topic (MetadataError when the request is invalid)."""
    validate_create_topic(image, name, partitions, replication_factor, assignments)
    if assignments is None:
        placed = assign_replicas(
            list(image.brokers.values()), partitions, replication_factor,
            image.replica_counts(), image.preferred_leader_counts())
    else:
        placed = [tuple(r) for r in assignments]
    return CreateTopic(name, topic_id, tuple(placed), freeze_configs(configs or {}))


def plan_create_partitions(
    image: MetadataImage,
    name: str,
    total: int,
    assignments: Sequence[Sequence[int]] | None = None,
) -> CreatePartitions:
    validate_create_partitions(image, name, total, assignments)
    info = image.topics[name]
    if assignments is None:
        placed = assign_replicas(
            list(image.brokers.values()), total - len(info.partitions),
            info.replication_factor, image.replica_counts(), image.preferred_leader_counts(),
            first_partition=len(info.partitions))
    else:
        placed = [tuple(r) for r in assignments]
    return CreatePartitions(name, tuple(placed))


def plan_reassignment(image: MetadataImage, topic: str, partition: int,
                      replicas: Sequence[int]) -> ReassignPartition:
    validate_reassignment(image, topic, partition, replicas)
    return ReassignPartition(topic, partition, tuple(replicas))


def plan_drain(image: MetadataImage, broker_id: int) -> list[SetBrokerDraining | ReassignPartition]:
    """Marks the broker draining, then moves each of its replicas elsewhere."""
    validate_drain(image, broker_id)
    commands: list[SetBrokerDraining | ReassignPartition] = []
    if not image.brokers[broker_id].draining:
        commands.append(SetBrokerDraining(broker_id, True))
    commands.extend(drain_plan(image, broker_id))
    return commands
