"""The group coordinator's requests and answers as plain types: the front ends (gRPC's
groups_service.py, a Kafka listener) translate their messages to and from these."""

from __future__ import annotations

from dataclasses import dataclass

from odradek.broker.groups.assignors import TP


@dataclass(frozen=True)
class CoordinatorInfo:
    broker_id: int
    address: str
    partition: int  # of __consumer_offsets


@dataclass(frozen=True)
class Joined:
    """The first message of a member's stream."""
    member_id: str
    generation: int
    heartbeat_interval_ms: int


@dataclass(frozen=True)
class Assignment:
    """What the member should own now, as of its generation."""
    generation: int
    partitions: frozenset[TP]


MemberMessage = Joined | Assignment


@dataclass(frozen=True)
class OffsetCommit:
    topic: str
    partition: int
    offset: int
    metadata: str = ""


@dataclass(frozen=True)
class CommittedOffset:
    topic: str
    partition: int
    offset: int  # -1: none committed
    metadata: str
    commit_timestamp_ms: int  # -1: none committed


class ResetTo:
    """Where a reset moves offsets to (ResetRequest.to)."""
    EARLIEST = "earliest"
    LATEST = "latest"
    TIMESTAMP = "timestamp"  # value: milliseconds
    OFFSET = "offset"  # value: the offset
    SHIFT = "shift"  # value: added to the committed offset (or to the latest)


@dataclass(frozen=True)
class ResetRequest:
    group_id: str
    to: str  # a ResetTo
    value: int = 0
    # (topic, partitions); no partitions: all of the topic's. Empty: every partition the
    # group has committed offsets for.
    partitions: tuple[tuple[str, tuple[int, ...]], ...] = ()
    dry_run: bool = False


@dataclass(frozen=True)
class OffsetChange:
    topic: str
    partition: int
    offset: int
    previous: int  # -1: none committed


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed_offset: int  # -1: none
    log_end_offset: int  # -1: the leader could not be asked
    lag: int  # -1: unknown
    member_id: str  # "" when no member owns it


# Member epochs of Kafka's consumer protocol (KIP-848) with a meaning of their own.
JOIN_EPOCH = 0
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2


@dataclass(frozen=True)
class ConsumerHeartbeat:
    """A heartbeat of Kafka's consumer protocol (KIP-848). None: unchanged since the
    member's last heartbeat (the protocol sends fields only when they change)."""
    member_id: str
    member_epoch: int
    instance_id: str | None
    client_id: str
    rebalance_timeout_ms: int  # -1: unchanged
    topics: frozenset[str] | None
    owned: frozenset[TP] | None
    assignor: str | None


@dataclass(frozen=True)
class ConsumerHeartbeatAnswer:
    member_id: str
    member_epoch: int
    heartbeat_interval_ms: int
    assignment: frozenset[TP] | None  # None: the member's assignment did not change
