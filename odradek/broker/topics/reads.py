"""Reading partitions: fetch (a long-poll for at least min_bytes or until max_wait),
a stream of fetches (subscribe), and list offsets. Front ends translate their requests to
these calls and the results back; nothing here knows a protocol."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass

from odradek.broker import clock
from odradek.broker.errors import invalid_request
from odradek.broker.replication.log_storage import PartitionRaftStorage
from odradek.broker.replication.replica import ReplicatedPartition

DEFAULT_FETCH_MAX_BYTES = 1024 * 1024
MAX_FETCH_BYTES = 64 * 1024 * 1024
MAX_WAIT_MS = 60_000
# A subscription waits this long for new data before it looks again (a closed partition
# or a lost leadership ends it then at the latest).
SUBSCRIBE_POLL_S = 1.0


@dataclass(frozen=True)
class FetchResult:
    records: bytes  # whole stored batches; the first may start before the offset asked
    high_watermark: int
    log_start_offset: int
    next_offset: int


class OffsetSpec(enum.Enum):
    EARLIEST = 1
    LATEST = 2
    TIMESTAMP = 3  # the first offset whose timestamp is at or after timestamp_ms


@dataclass(frozen=True)
class OffsetAnswer:
    found: bool
    offset: int
    timestamp_ms: int = -1


def check_partition_request(topic: str, partition: int) -> None:
    if not topic:
        raise invalid_request("the request names no topic")
    if partition < 0:
        raise invalid_request(f"partition must not be negative, got {partition}")


def fetch_bytes(requested: int) -> int:
    """The byte budget of a fetch: the default for 0, capped."""
    if requested < 0:
        raise invalid_request(f"max_bytes must not be negative, got {requested}")
    return min(requested or DEFAULT_FETCH_MAX_BYTES, MAX_FETCH_BYTES)


def _result(partition: ReplicatedPartition, data: bytes, next_offset: int) -> FetchResult:
    return FetchResult(data, partition.high_watermark, partition.log.log_start_offset,
                       next_offset)


async def fetch(partition: ReplicatedPartition, offset: int, max_bytes: int,
                max_wait_ms: int, min_bytes: int) -> FetchResult:
    """Committed batches from offset; waits up to max_wait_ms (capped) for min_bytes."""
    if max_wait_ms < 0 or min_bytes < 0:
        raise invalid_request("max_wait_ms and min_bytes must not be negative")
    budget = fetch_bytes(max_bytes)
    deadline = clock.monotonic() + min(max_wait_ms, MAX_WAIT_MS) / 1000
    while True:
        result = partition.read(offset, budget)
        remaining = deadline - clock.monotonic()
        if len(result.data) >= max(min_bytes, 1) or remaining <= 0:
            return _result(partition, result.data, result.next_offset)
        await partition.wait_for_append(remaining)


async def subscribe(partition: ReplicatedPartition, offset: int,
                    max_bytes: int) -> AsyncIterator[FetchResult]:
    """Every batch from offset on, as it is committed; never ends by itself."""
    budget = fetch_bytes(max_bytes)
    while True:
        result = partition.read(offset, budget)
        if result.data:
            offset = result.next_offset
            yield _result(partition, result.data, result.next_offset)
        else:
            await partition.wait_for_append(SUBSCRIBE_POLL_S)


def epoch_end(partition: ReplicatedPartition, epoch: int) -> tuple[int, int]:
    """(leader epoch, end offset) for a leader epoch: see PartitionRaftStorage.epoch_end."""
    storage = partition.node.storage
    if not isinstance(storage, PartitionRaftStorage):
        return -1, -1
    return storage.epoch_end(epoch)


def list_offsets(partition: ReplicatedPartition, spec: OffsetSpec,
                 timestamp_ms: int = 0) -> OffsetAnswer:
    log = partition.log
    if spec == OffsetSpec.EARLIEST:
        return OffsetAnswer(True, log.log_start_offset)
    # A new leader's high watermark may lag the one consumers saw: they must not go back.
    partition.check_high_watermark_known()
    hw = partition.high_watermark
    if spec == OffsetSpec.LATEST:
        return OffsetAnswer(True, hw)
    hit = log.offset_for_timestamp(timestamp_ms)
    if hit is None or hit[0] >= hw:
        return OffsetAnswer(False, hw)
    return OffsetAnswer(True, hit[0], hit[1])
