"""Decodes fetched RecordBatch v2 bytes straight into ConsumerRecords.

Same result as odradek.records.iter_records (a test holds them equal), but with the
one-byte varints that dominate record framing decoded inline."""

from __future__ import annotations

from typing import NamedTuple

from odradek.records import BATCH_HEADER_SIZE, Compression, InvalidRecordError, iter_batches
from odradek.records.batch import check_batch
from odradek.records.compression import decompress


class ConsumerRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def _varint(buf: bytes, p: int) -> tuple[int, int]:
    shift = 0
    result = 0
    while True:
        b = buf[p]
        p += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), p
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def decode_fetched(
    topic: str, partition: int, data: bytes, start: int, verify: bool = True,
) -> tuple[list[ConsumerRecord], int | None]:
    """Records at or after `start` in data's whole batches (control batches skipped), and
    the offset after the last whole batch (None when there is none). Raises
    odradek.records.InvalidRecordError on a corrupt batch."""
    out: list[ConsumerRecord] = []
    append = out.append
    next_offset: int | None = None
    view = memoryview(data)
    for pos, header in iter_batches(view):
        next_offset = header.next_offset
        if header.is_control or header.last_offset < start:
            continue
        if verify:
            check_batch(view, pos, pos + header.size)
        raw = view[pos + BATCH_HEADER_SIZE : pos + header.size]
        body = (decompress(Compression(header.compression), raw) if header.compression
                else bytes(raw))
        base_offset = header.base_offset
        base_ts = header.base_timestamp
        append_time = header.max_timestamp if header.log_append_time else None
        p = 0
        try:
            for _ in range(header.record_count):
                b = body[p]
                if b < 0x80:
                    length, p = (b >> 1) ^ -(b & 1), p + 1
                else:
                    length, p = _varint(body, p)
                end = p + length
                p += 1  # attributes
                b = body[p]
                if b < 0x80:
                    ts_delta, p = (b >> 1) ^ -(b & 1), p + 1
                else:
                    ts_delta, p = _varint(body, p)
                b = body[p]
                if b < 0x80:
                    off_delta, p = (b >> 1) ^ -(b & 1), p + 1
                else:
                    off_delta, p = _varint(body, p)
                b = body[p]
                if b < 0x80:
                    n, p = (b >> 1) ^ -(b & 1), p + 1
                else:
                    n, p = _varint(body, p)
                if n < 0:
                    key = None
                else:
                    key = body[p : p + n]
                    p += n
                b = body[p]
                if b < 0x80:
                    n, p = (b >> 1) ^ -(b & 1), p + 1
                else:
                    n, p = _varint(body, p)
                if n < 0:
                    value = None
                else:
                    value = body[p : p + n]
                    p += n
                nh, p = _varint(body, p)
                headers: tuple[tuple[str, bytes | None], ...] = ()
                if nh:
                    hs: list[tuple[str, bytes | None]] = []
                    for _h in range(nh):
                        n, p = _varint(body, p)
                        name = body[p : p + n].decode() if n > 0 else ""
                        p += max(n, 0)
                        n, p = _varint(body, p)
                        if n < 0:
                            hs.append((name, None))
                        else:
                            hs.append((name, body[p : p + n]))
                            p += n
                    headers = tuple(hs)
                if p != end or p > len(body):
                    raise InvalidRecordError("CORRUPT_RECORD", "record length is off")
                offset = base_offset + off_delta
                if offset >= start:
                    append(ConsumerRecord(
                        topic, partition, offset,
                        append_time if append_time is not None else base_ts + ts_delta,
                        key, value, headers))
        except (IndexError, ValueError) as exc:
            if isinstance(exc, InvalidRecordError):
                raise
            raise InvalidRecordError("CORRUPT_RECORD", f"undecodable record: {exc}") from exc
    return out, next_offset
