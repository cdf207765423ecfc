"""Helpers shared by the storage tests."""

from __future__ import annotations

from pathlib import Path

from odradek.records import Record, encode_batch, iter_records
from odradek.storage import PartitionLog


class Clock:
    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def batch(*values: bytes | None, ts: int = 1_700_000_000_000, key: bytes | None = b"k") -> bytes:
    return encode_batch([(ts, key, v) for v in values])


def keyed(pairs: list[tuple[bytes | None, bytes | None]], ts: int) -> bytes:
    return encode_batch([(ts, k, v) for k, v in pairs])


def read_all(log: PartitionLog, start: int | None = None, max_bytes: int = 700) -> list[Record]:
    """Every record from start to the end, in small reads."""
    offset = log.log_start_offset if start is None else start
    out: list[Record] = []
    while offset < log.log_end_offset:
        result = log.read(offset, max_bytes)
        if not result.data:
            break
        assert result.next_offset > offset
        out.extend(r for r in iter_records(result.data) if r.offset >= offset)
        offset = result.next_offset
    return out


def segment_files(directory: Path, suffix: str = ".log") -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(suffix))
