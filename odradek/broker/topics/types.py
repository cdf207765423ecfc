"""Topic admin and metadata answers as plain types (TopicAdmin returns these; the front
ends translate them into their own messages)."""

from __future__ import annotations

from dataclasses import dataclass, field

from odradek.broker.metadata.commands import Endpoints


@dataclass(frozen=True)
class BrokerEntry:
    id: int
    host: str
    port: int
    rack: str  # "" when none
    kafka_port: int = 0  # 0: no Kafka listener
    endpoints: Endpoints = ()  # further listeners (odradek.broker.listeners)


@dataclass(frozen=True)
class PartitionView:
    """A partition as a client should see it: the leader (-1: none), its replicas, the
    ones in sync, the leader's epoch, and the target of a reassignment under way."""
    partition: int
    leader: int
    replicas: tuple[int, ...]
    in_sync_replicas: tuple[int, ...]
    leader_epoch: int
    target_replicas: tuple[int, ...] = ()


@dataclass(frozen=True)
class TopicView:
    name: str
    partitions: tuple[PartitionView, ...]


@dataclass(frozen=True)
class ClusterView:
    cluster_id: str
    controller_id: int  # -1: none elected
    brokers: tuple[BrokerEntry, ...]
    topics: tuple[TopicView, ...]


@dataclass(frozen=True)
class TopicSummary:
    name: str
    partitions: int
    replication_factor: int
    internal: bool


@dataclass(frozen=True)
class ConfigEntry:
    name: str
    value: str
    is_default: bool


@dataclass(frozen=True)
class PartitionState:
    """A partition's view, plus what this broker's replica knows (0 without one)."""
    info: PartitionView
    log_start_offset: int = 0
    high_watermark: int = 0
    size_bytes: int = 0
    segments: int = 0


@dataclass(frozen=True)
class TopicDescription:
    name: str
    topic_id: str
    replication_factor: int
    partitions: tuple[PartitionState, ...]
    configs: tuple[ConfigEntry, ...] = field(default=())


@dataclass(frozen=True)
class PartitionMove:
    topic: str
    partition: int
    from_replicas: tuple[int, ...]
    to_replicas: tuple[int, ...]
