"""Encodes records into a RecordBatch v2."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import crc32c

from odradek.records.batch import (
    _HEADER,
    ATTR_CONTROL,
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    BatchHeader,
)
from odradek.records.compression import Compression, compress
from odradek.records.reader import Record
from odradek.records.varint import encode_varint, varint_bytes

Header = tuple[str, bytes | None]

NO_PRODUCER_ID = -1
_NULL = varint_bytes(-1)
NO_SEQUENCE = -1


class BatchBuilder:
    """Accumulates records for one batch; `build()` returns the encoded bytes.

    Offsets within the batch are 0..n-1; the broker assigns the base offset."""

    def __init__(
        self,
        compression: Compression = Compression.NONE,
        producer_id: int = NO_PRODUCER_ID,
        producer_epoch: int = -1,
        base_sequence: int = NO_SEQUENCE,
        control: bool = False,
    ) -> None:
        self.compression = compression
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.base_sequence = base_sequence
        self.control = control
        self._body = bytearray()
        self._count = 0
        self._base_ts = 0
        self._max_ts = -1

    def __len__(self) -> int:
        return self._count

    @property
    def size_estimate(self) -> int:
        """Uncompressed size so far: an upper bound for deciding when a batch is full."""
        return BATCH_HEADER_SIZE + len(self._body)

    def append(
        self,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[Header] = (),
    ) -> None:
        if self._count == 0:
            self._base_ts = timestamp
            self._max_ts = timestamp
        elif timestamp > self._max_ts:
            self._max_ts = timestamp
        _encode_record(self._body, timestamp - self._base_ts, self._count, key, value, headers)
        self._count += 1

    def build(self) -> bytes:
        if self._count == 0:
            raise ValueError("a batch needs at least one record")
        payload = compress(self.compression, bytes(self._body))
        attributes = int(self.compression) | (ATTR_CONTROL if self.control else 0)
        out = bytearray(BATCH_HEADER_SIZE)
        _HEADER.pack_into(
            out, 0, 0, BATCH_HEADER_SIZE - LOG_OVERHEAD + len(payload), -1, MAGIC, 0, attributes,
            self._count - 1, self._base_ts, self._max_ts, self.producer_id, self.producer_epoch,
            self.base_sequence, self._count)
        out += payload
        struct.pack_into(">I", out, 17, crc32c.crc32c(memoryview(out)[21:]))
        return bytes(out)


def _encode_record(
    out: bytearray,
    timestamp_delta: int,
    offset_delta: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[Header],
) -> None:
    ts = varint_bytes(timestamp_delta)
    off = varint_bytes(offset_delta)
    if key is None:
        klen, key = _NULL, b""
    else:
        klen = varint_bytes(len(key))
    if value is None:
        vlen, value = _NULL, b""
    else:
        vlen = varint_bytes(len(value))
    if headers:
        hdr = bytearray(varint_bytes(len(headers)))
        for name, hvalue in headers:
            _encode_bytes(name.encode(), hdr)
            _encode_bytes(hvalue, hdr)
    else:
        hdr = bytearray(b"\x00")
    length = 1 + len(ts) + len(off) + len(klen) + len(key) + len(vlen) + len(value) + len(hdr)
    out += varint_bytes(length)
    out += b"\x00"  # record attributes: unused
    out += ts
    out += off
    out += klen
    out += key
    out += vlen
    out += value
    out += hdr


def rebuild_batch(header: BatchHeader, records: Sequence[Record]) -> bytes:
    """Re-encodes a batch with a subset of its records (for compaction).

    Keeps everything that describes the batch: baseOffset, lastOffsetDelta (so the batch
    still spans the same offsets), partitionLeaderEpoch, attributes, producer fields and
    baseTimestamp; each kept record keeps its offset. maxTimestamp is recomputed over the
    kept records, except for LogAppendTime batches, whose records all carry it."""
    if not records:
        raise ValueError("a batch needs at least one record")
    body = bytearray()
    max_ts = records[0].timestamp
    for rec in records:
        max_ts = max(max_ts, rec.timestamp)
        _encode_record(body, rec.timestamp - header.base_timestamp,
                       rec.offset - header.base_offset, rec.key, rec.value, rec.headers)
    if header.log_append_time:
        max_ts = header.max_timestamp
    payload = compress(Compression(header.compression), bytes(body))
    out = bytearray(BATCH_HEADER_SIZE)
    _HEADER.pack_into(
        out, 0, header.base_offset, BATCH_HEADER_SIZE - LOG_OVERHEAD + len(payload),
        header.leader_epoch, MAGIC, 0, header.attributes,
        header.last_offset_delta, header.base_timestamp, max_ts, header.producer_id,
        header.producer_epoch, header.base_sequence, len(records))
    out += payload
    struct.pack_into(">I", out, 17, crc32c.crc32c(memoryview(out)[21:]))
    return bytes(out)


def _encode_bytes(data: bytes | None, out: bytearray) -> None:
    if data is None:
        encode_varint(-1, out)
    else:
        encode_varint(len(data), out)
        out += data


def encode_batch(
    records: Iterable[tuple[int, bytes | None, bytes | None]],
    compression: Compression = Compression.NONE,
) -> bytes:
    """Convenience: one batch from (timestamp, key, value) triples."""
    builder = BatchBuilder(compression)
    for timestamp, key, value in records:
        builder.append(timestamp, key, value)
    return builder.build()
