"""Decodes the records of RecordBatch v2 bytes: for clients, compaction and tools,
never for the broker's produce or fetch path."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from odradek.records.batch import (
    BATCH_HEADER_SIZE,
    BatchHeader,
    InvalidRecordError,
    check_batch,
    iter_batches,
    parse_header,
)
from odradek.records.compression import Compression, decompress
from odradek.records.varint import decode_varint


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


def decode_batch(buf: bytes | memoryview, pos: int = 0, verify: bool = True) -> list[Record]:
    """Decodes every record of the batch at pos."""
    view = memoryview(buf)
    if verify:
        size = int.from_bytes(view[pos + 8 : pos + 12], "big", signed=True) + 12
        header = check_batch(view, pos, pos + size)
    else:
        header = parse_header(view, pos)
    return list(_records(view, pos, header))


def _records(view: memoryview, pos: int, header: BatchHeader) -> Iterator[Record]:
    body_start = pos + BATCH_HEADER_SIZE
    body: bytes | memoryview = view[body_start : pos + header.size]
    if header.compression:
        try:
            body = decompress(Compression(header.compression), body)
        except Exception as exc:  # cramjam raises its own error types
            raise InvalidRecordError(
                "CORRUPT_RECORD", f"batch at offset {header.base_offset} does not decompress "
                f"as {Compression(header.compression).name.lower()}: {exc}") from exc
    append_time = header.max_timestamp if header.log_append_time else None
    p = 0
    try:
        for _ in range(header.record_count):
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
            timestamp = append_time if append_time is not None else header.base_timestamp + ts_delta
            yield Record(header.base_offset + off_delta, timestamp, key, value, tuple(headers))
    except (IndexError, ValueError) as exc:
        if isinstance(exc, InvalidRecordError):
            raise
        raise InvalidRecordError("CORRUPT_RECORD", f"undecodable record: {exc}") from exc


def _read_bytes(body: bytes | memoryview, p: int) -> tuple[bytes | None, int]:
    length, p = decode_varint(body, p)
    if length < 0:
        return None, p
    if p + length > len(body):
        raise IndexError("field runs past the end of the batch")
    return bytes(body[p : p + length]), p + length


def iter_records(buf: bytes | memoryview, verify: bool = True) -> Iterator[Record]:
    """Every record of every data batch in buf; control batches are skipped."""
    view = memoryview(buf)
    for pos, header in iter_batches(view):
        if header.is_control:
            continue
        if verify:
            check_batch(view, pos, pos + header.size)
        yield from _records(view, pos, header)
