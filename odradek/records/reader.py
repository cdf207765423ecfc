"""Decodes the records of RecordBatch v2 bytes: for clients, compaction and tools,
never for the broker's produce or fetch path."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from odradek.records._impl import decode_records
from odradek.records.batch import (
    BATCH_HEADER_SIZE,
    BatchHeader,
    InvalidRecordError,
    check_batch,
    iter_batches,
    parse_header,
)
from odradek.records.compression import Compression, decompress
from odradek.records.record import Record

__all__ = ["Record", "decode_batch", "iter_records"]

Decode = Callable[[bytes | memoryview, int, int, int, int | None], list[Record]]


def decode_batch(buf: bytes | memoryview, pos: int = 0, verify: bool = True) -> list[Record]:
    """Decodes every record of the batch at pos."""
    view = memoryview(buf)
    if verify:
        size = int.from_bytes(view[pos + 8 : pos + 12], "big", signed=True) + 12
        header = check_batch(view, pos, pos + size)
    else:
        header = parse_header(view, pos)
    return _records(decode_records, view, pos, header)


def _records(decode: Decode, view: memoryview, pos: int, header: BatchHeader) -> list[Record]:
    """The batch's records, decoded by either codec's decode_records (the tests compare
    the two through here)."""
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
    return decode(body, header.record_count, header.base_offset, header.base_timestamp,
                  append_time)


def iter_records(buf: bytes | memoryview, verify: bool = True) -> Iterator[Record]:
    """Every record of every data batch in buf; control batches are skipped."""
    view = memoryview(buf)
    for pos, header in iter_batches(view):
        if header.is_control:
            continue
        if verify:
            check_batch(view, pos, pos + header.size)
        yield from _records(decode_records, view, pos, header)
