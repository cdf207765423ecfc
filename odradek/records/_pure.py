"""The pure-Python record codec: what odradek.records._fast compiles, and the fallback
where it is not built (or ODRADEK_PURE_PYTHON=1). Both expose the same four names with
the same behaviour, byte for byte (tests/unit/test_records_fast.py holds them equal).

Only the per-record work lives here; batch framing decisions (compression, attributes)
stay in builder.py and reader.py, shared by both."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import crc32c

from odradek.records.batch import (
    _HEADER,
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    InvalidRecordError,
)
from odradek.records.record import Record
from odradek.records.varint import decode_varint, encode_varint, varint_bytes

Header = tuple[str, bytes | None]

_NULL = varint_bytes(-1)
_HEADER_CRC = struct.Struct(">I")


class RecordsBuffer:
    """The encoded records of one batch so far (offsets 0..n-1, timestamps as deltas
    from the first record's)."""

    __slots__ = ("_body", "_count", "_base_ts", "_max_ts")

    def __init__(self) -> None:
        self._body = bytearray()
        self._count = 0
        self._base_ts = 0
        self._max_ts = -1

    def __len__(self) -> int:
        return self._count

    @property
    def size_estimate(self) -> int:
        """Uncompressed batch size so far: an upper bound for deciding when it is full."""
        return BATCH_HEADER_SIZE + len(self._body)

    @property
    def base_timestamp(self) -> int:
        return self._base_ts

    @property
    def max_timestamp(self) -> int:
        return self._max_ts

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

    def append_raw(
        self,
        timestamp_delta: int,
        offset_delta: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[Header] = (),
    ) -> None:
        """A record with its deltas given (a rebuilt batch keeps its records' offsets);
        counts it, leaves the timestamps alone."""
        _encode_record(self._body, timestamp_delta, offset_delta, key, value, headers)
        self._count += 1

    def body(self) -> bytes:
        return bytes(self._body)


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


def _encode_bytes(data: bytes | None, out: bytearray) -> None:
    if data is None:
        encode_varint(-1, out)
    else:
        encode_varint(len(data), out)
        out += data


def frame_batch(
    base_offset: int, leader_epoch: int, attributes: int, last_offset_delta: int,
    base_timestamp: int, max_timestamp: int, producer_id: int, producer_epoch: int,
    base_sequence: int, record_count: int, payload: bytes,
) -> bytes:
    """The whole batch: the 61-byte header (with its CRC-32C) before payload."""
    out = bytearray(BATCH_HEADER_SIZE)
    _HEADER.pack_into(
        out, 0, base_offset, BATCH_HEADER_SIZE - LOG_OVERHEAD + len(payload), leader_epoch,
        MAGIC, 0, attributes, last_offset_delta, base_timestamp, max_timestamp, producer_id,
        producer_epoch, base_sequence, record_count)
    out += payload
    _HEADER_CRC.pack_into(out, 17, crc32c.crc32c(memoryview(out)[21:]))
    return bytes(out)


def decode_records(
    body: bytes | memoryview, count: int, base_offset: int, base_timestamp: int,
    append_time: int | None,
) -> list[Record]:
    """The count records of an uncompressed batch body. append_time, when not None, is
    every record's timestamp (a LogAppendTime batch). Raises InvalidRecordError
    (CORRUPT_RECORD) on a record that does not decode."""
    out: list[Record] = []
    p = 0
    try:
        for _ in range(count):
            length, p = decode_varint(body, p)
            end = p + length
            p += 1  # record attributes
            ts_delta, p = decode_varint(body, p)
            off_delta, p = decode_varint(body, p)
            key, p = _read_bytes(body, p)
            value, p = _read_bytes(body, p)
            nheaders, p = decode_varint(body, p)
            headers = []
            for _h in range(nheaders):
                name, p = _read_bytes(body, p)
                hval, p = _read_bytes(body, p)
                headers.append(((name or b"").decode(), hval))
            if p != end:
                raise InvalidRecordError("CORRUPT_RECORD", "record length is off")
            timestamp = append_time if append_time is not None else base_timestamp + ts_delta
            out.append(Record(base_offset + off_delta, timestamp, key, value, tuple(headers)))
    except (IndexError, ValueError) as exc:
        if isinstance(exc, InvalidRecordError):
            raise
        raise InvalidRecordError("CORRUPT_RECORD", f"undecodable record: {exc}") from exc
    return out


def _read_bytes(body: bytes | memoryview, p: int) -> tuple[bytes | None, int]:
    length, p = decode_varint(body, p)
    if length < 0:
        return None, p
    if p + length > len(body):
        raise IndexError("field runs past the end of the batch")
    return bytes(body[p : p + length]), p + length
