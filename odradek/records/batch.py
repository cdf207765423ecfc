"""The RecordBatch v2 header: parse, validate and patch without decoding records.

Layout (big-endian), 61 bytes before the records:
  baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 |
  crc uint32 | attributes int16 | lastOffsetDelta int32 | baseTimestamp int64 |
  maxTimestamp int64 | producerId int64 | producerEpoch int16 | baseSequence int32 |
  recordCount int32
The CRC-32C covers attributes to the end of the batch, so baseOffset and
partitionLeaderEpoch can be rewritten without recomputing it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import crc32c

BATCH_HEADER_SIZE = 61
# baseOffset and batchLength: the part of the header outside batchLength's count.
LOG_OVERHEAD = 12
MAGIC = 2
_HEADER = struct.Struct(">qiibIhiqqqhii")
_CRC_START = 21
_OFFSET_LENGTH = struct.Struct(">qi")
_EPOCH = struct.Struct(">i")

ATTR_COMPRESSION_MASK = 0x07
ATTR_LOG_APPEND_TIME = 0x08
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
ATTR_DELETE_HORIZON = 0x40


class InvalidRecordError(ValueError):
    """A batch that is malformed or fails its checksum. `reason` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BatchHeader:
    base_offset: int
    batch_length: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1

    @property
    def compression(self) -> int:
        return self.attributes & ATTR_COMPRESSION_MASK

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)

    @property
    def log_append_time(self) -> bool:
        return bool(self.attributes & ATTR_LOG_APPEND_TIME)


def parse_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    return BatchHeader(*_HEADER.unpack_from(buf, pos))


def peek_size(buf: bytes | bytearray | memoryview, pos: int) -> int | None:
    """Size of the batch at pos, or None when fewer than 12 bytes remain."""
    if len(buf) - pos < LOG_OVERHEAD:
        return None
    return int(_OFFSET_LENGTH.unpack_from(buf, pos)[1]) + LOG_OVERHEAD


def check_batch(buf: bytes | bytearray | memoryview, pos: int, end: int) -> BatchHeader:
    """Validates the batch at pos (framing, magic, CRC, counts); returns its header."""
    if end - pos < BATCH_HEADER_SIZE:
        raise InvalidRecordError(
            "CORRUPT_RECORD", f"batch at byte {pos} is truncated: {end - pos} bytes left, "
            f"a header needs {BATCH_HEADER_SIZE}")
    header = parse_header(buf, pos)
    if header.batch_length < BATCH_HEADER_SIZE - LOG_OVERHEAD or pos + header.size > end:
        raise InvalidRecordError(
            "CORRUPT_RECORD", f"batch at byte {pos} declares length {header.batch_length} "
            f"but {end - pos - LOG_OVERHEAD} bytes follow")
    if header.magic != MAGIC:
        raise InvalidRecordError(
            "UNSUPPORTED_MAGIC", f"batch at byte {pos} has magic {header.magic}; "
            f"only RecordBatch v2 (magic 2) is supported")
    actual = crc32c.crc32c(memoryview(buf)[pos + _CRC_START : pos + header.size])
    if actual != header.crc:
        raise InvalidRecordError(
            "CORRUPT_RECORD", f"batch at byte {pos} fails its CRC-32C check "
            f"(stored {header.crc:#010x}, computed {actual:#010x})")
    if header.record_count < 0 or header.last_offset_delta < 0:
        raise InvalidRecordError(
            "INVALID_RECORD", f"batch at byte {pos} has a negative record count or offset delta")
    if header.compression > 4:
        raise InvalidRecordError(
            "INVALID_RECORD", f"batch at byte {pos} uses unknown compression codec "
            f"{header.compression}")
    return header


_FRAME = struct.Struct(">qi4xbI")  # baseOffset, batchLength, magic, crc


def first_corrupt(buf: bytes | memoryview) -> tuple[int, InvalidRecordError] | None:
    """Where the first batch of buf that fails check_batch lies, and why; None when every
    batch is whole and matches its CRC. For bytes read back from disk: it skips building
    a header per batch (which costs more than the CRC itself), and the checks that only
    a producer's batch needs (counts, codec) are covered by the CRC of a stored one."""
    view = memoryview(buf)
    crc = crc32c.crc32c
    pos = 0
    end = len(buf)
    while pos < end:
        if end - pos >= BATCH_HEADER_SIZE:
            _base, length, magic, stored = _FRAME.unpack_from(buf, pos)
            size = length + LOG_OVERHEAD
            if (size >= BATCH_HEADER_SIZE and pos + size <= end and magic == MAGIC
                    and crc(view[pos + _CRC_START : pos + size]) == stored):
                pos += size
                continue
        try:
            pos += check_batch(buf, pos, end).size
        except InvalidRecordError as exc:
            return pos, exc
    return None


def iter_batches(buf: bytes | bytearray | memoryview) -> Iterator[tuple[int, BatchHeader]]:
    """Yields (position, header) of each whole batch; stops at a partial tail."""
    pos = 0
    end = len(buf)
    while True:
        size = peek_size(buf, pos)
        if size is None or size < BATCH_HEADER_SIZE or pos + size > end:
            return
        yield pos, parse_header(buf, pos)
        pos += size


def validate_batches(buf: bytes | memoryview, max_batch_bytes: int) -> list[BatchHeader]:
    """Checks producer-sent batches end to end: each whole, CRC-valid, v2, non-empty,
    no larger than max_batch_bytes, with lastOffsetDelta = recordCount - 1."""
    if len(buf) == 0:
        raise InvalidRecordError("INVALID_RECORD", "the request holds no record batch")
    headers = []
    pos = 0
    end = len(buf)
    while pos < end:
        size = peek_size(buf, pos)
        if size is not None and size > max_batch_bytes and pos + size <= end:
            raise InvalidRecordError(
                "RECORD_TOO_LARGE", f"batch at byte {pos} is {size} bytes, over the topic's "
                f"max.message.bytes of {max_batch_bytes}")
        header = check_batch(buf, pos, end)
        if header.record_count == 0:
            raise InvalidRecordError("INVALID_RECORD", f"batch at byte {pos} has no records")
        if header.last_offset_delta != header.record_count - 1:
            raise InvalidRecordError(
                "INVALID_RECORD", f"batch at byte {pos} has {header.record_count} records "
                f"but lastOffsetDelta {header.last_offset_delta}")
        headers.append(header)
        pos += header.size
    return headers


def set_offset_and_epoch(buf: bytearray, pos: int, base_offset: int, leader_epoch: int) -> None:
    """Rewrites the two fields outside the CRC."""
    struct.pack_into(">q", buf, pos, base_offset)
    _EPOCH.pack_into(buf, pos + 12, leader_epoch)


def set_max_timestamp(buf: bytearray, pos: int, timestamp: int, log_append_time: bool) -> None:
    """For LogAppendTime topics: stamps maxTimestamp and the attribute bit, then re-CRCs.

    This is the one case where the broker touches CRC-covered bytes, as Kafka does."""
    attrs = struct.unpack_from(">h", buf, pos + 21)[0]
    if log_append_time:
        attrs |= ATTR_LOG_APPEND_TIME
    else:
        attrs &= ~ATTR_LOG_APPEND_TIME
    struct.pack_into(">h", buf, pos + 21, attrs)
    struct.pack_into(">q", buf, pos + 35, timestamp)
    size = peek_size(buf, pos)
    assert size is not None
    crc = crc32c.crc32c(memoryview(buf)[pos + _CRC_START : pos + size])
    struct.pack_into(">I", buf, pos + 17, crc)


_PRODUCER = struct.Struct(">qhi")
_PRODUCER_POS = 43


def set_producer(buf: bytearray, pos: int, producer_id: int, producer_epoch: int,
                 base_sequence: int) -> None:
    """Stamps an idempotent producer's id, epoch and base sequence, then re-CRCs: the
    client builds a batch before it knows them and stamps it once, before the first send."""
    _PRODUCER.pack_into(buf, pos + _PRODUCER_POS, producer_id, producer_epoch, base_sequence)
    size = peek_size(buf, pos)
    assert size is not None
    crc = crc32c.crc32c(memoryview(buf)[pos + _CRC_START : pos + size])
    struct.pack_into(">I", buf, pos + 17, crc)
