"""Log compaction: keep the latest record per key in the sealed segments.

A run reads the cleanable segments twice: once to learn the last offset of every key,
once to copy what survives into new segments. A batch whose records all survive is copied
byte for byte; a batch that loses some is re-encoded with the same baseOffset,
lastOffsetDelta, producer fields and compression, so every kept record keeps its offset;
a batch that loses all is dropped (offsets then have gaps, which the log allows).
Control batches and records without a key are always kept.

Replacing segments is crash-safe. For each group of old segments (merged while their total
size fits segment.bytes) the new files are written as `<base>.log.cleaned` (and
`.index.cleaned`, `.timeindex.cleaned`) and fsynced, then renamed to `.swap`; the rename of
the `.log` is the commit point. Then the old segments' files are deleted and the `.swap`
files renamed to their final names. At open, `recover_interrupted` deletes `.cleaned`
leftovers (the old segments are intact) and finishes any committed swap.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from odradek.records.batch import parse_header
from odradek.records.builder import rebuild_batch
from odradek.records.reader import Record, decode_batch
from odradek.storage.config import LogConfig
from odradek.storage.segment import (
    INDEX_SUFFIX,
    INT32_MAX,
    LOG_SUFFIX,
    TIMEINDEX_SUFFIX,
    AppendedBatch,
    LogSegment,
    parse_segment_name,
    segment_name,
)

log = logging.getLogger("odradek.storage")

CLEANED = ".cleaned"
SWAP = ".swap"
_FLUSH_BYTES = 1 << 20


@dataclass(frozen=True)
class CompactionStats:
    segments_cleaned: int = 0  # old segments replaced by cleaned ones
    bytes_before: int = 0  # size of the cleanable segments before the run
    bytes_after: int = 0  # and after
    records_removed: int = 0


def _crash_point(stage: str) -> None:
    """Does nothing; tests replace it to simulate a crash at a stage of the swap."""


def latest_offsets(segments: Sequence[LogSegment]) -> dict[bytes, int]:
    """Last offset of every key in the segments (the cleaner's offset map)."""
    latest: dict[bytes, int] = {}
    for seg in segments:
        for header, view in seg.iter_batches():
            if header.is_control:
                continue
            for rec in decode_batch(view, verify=False):
                if rec.key is not None:
                    latest[rec.key] = rec.offset
    return latest


def group_segments(segments: Sequence[LogSegment], max_bytes: int) -> list[list[LogSegment]]:
    """Consecutive runs whose total size fits max_bytes and whose offsets fit one segment."""
    groups: list[list[LogSegment]] = []
    for seg in segments:
        if groups:
            last = groups[-1]
            size = sum(s.size for s in last) + seg.size
            span = seg.next_offset - last[0].base_offset
            if size <= max_bytes and span <= INT32_MAX:
                last.append(seg)
                continue
        groups.append([seg])
    return groups


def clean_group(
    directory: Path,
    group: Sequence[LogSegment],
    latest: dict[bytes, int],
    tombstone_horizon: int,
    index_interval: int,
) -> tuple[LogSegment, int]:
    """Writes the survivors of a group to `.cleaned` files (fsynced). Returns the cleaned
    segment (still open) and the number of records removed."""
    out = LogSegment(directory, group[0].base_offset, suffix=CLEANED, truncate=True)

    def keep(rec: Record) -> bool:
        if rec.key is None:
            return True
        if latest.get(rec.key) != rec.offset:
            return False
        return not (rec.value is None and rec.timestamp < tombstone_horizon)

    try:
        removed = _copy_survivors(group, out, keep, index_interval)
    except BaseException:
        out.delete_files()  # a group that changed under us, or a crash test: no leftovers
        raise
    out.seal()
    out.flush()
    return out, removed


def _copy_survivors(group: Sequence[LogSegment], out: LogSegment,
                    keep: Callable[[Record], bool], index_interval: int) -> int:
    removed = 0
    buf = bytearray()
    pending: list[AppendedBatch] = []
    for seg in group:
        for header, view in seg.iter_batches():
            data: bytes | memoryview = view
            max_ts = header.max_timestamp
            if not header.is_control:
                records = decode_batch(view, verify=False)
                kept = [r for r in records if keep(r)]
                removed += len(records) - len(kept)
                if not kept:
                    continue
                if len(kept) < len(records):
                    data = rebuild_batch(header, kept)
                    max_ts = parse_header(data).max_timestamp
            pending.append(AppendedBatch(len(buf), header.base_offset, header.next_offset,
                                         max_ts, len(data)))
            buf += data
            if len(buf) >= _FLUSH_BYTES:
                out.append(buf, pending, index_interval)
                buf.clear()
                pending.clear()
    if buf:
        out.append(buf, pending, index_interval)
    return removed


def commit_swap(directory: Path, cleaned: LogSegment, group: Sequence[LogSegment]) -> None:
    """Replaces the group's files by the cleaned segment's; see the module docstring."""
    cleaned.close()
    name = segment_name(cleaned.base_offset)
    for suffix in (INDEX_SUFFIX, TIMEINDEX_SUFFIX):
        os.replace(directory / (name + suffix + CLEANED), directory / (name + suffix + SWAP))
    os.replace(directory / (name + LOG_SUFFIX + CLEANED), directory / (name + LOG_SUFFIX + SWAP))
    fsync_dir(directory)
    _crash_point("committed")
    for seg in group[1:]:
        for path in seg.files():
            path.unlink(missing_ok=True)
    _crash_point("old-deleted")
    _install_swap(directory, name)
    fsync_dir(directory)


def _install_swap(directory: Path, name: str) -> None:
    for suffix in (INDEX_SUFFIX, TIMEINDEX_SUFFIX):
        swap = directory / (name + suffix + SWAP)
        if swap.exists():
            os.replace(swap, directory / (name + suffix))
        else:  # renamed already, or never there: the segment rebuilds it if needed
            pass
    os.replace(directory / (name + LOG_SUFFIX + SWAP), directory / (name + LOG_SUFFIX))


def recover_interrupted(directory: Path) -> None:
    """At open: drops unfinished compaction output and finishes committed swaps."""
    for path in sorted(directory.iterdir()):
        if path.name.endswith(CLEANED):
            log.warning("recovery: removed %s, left by a compaction that did not commit", path)
            path.unlink()
    for swap in sorted(directory.glob("*" + LOG_SUFFIX + SWAP)):
        base = parse_segment_name(swap.name[: -len(SWAP)])
        if base is None:
            continue
        seg = LogSegment(directory, base, suffix=SWAP)
        end = base
        for _pos, header in seg.headers(0):
            end = header.next_offset
        seg.close()
        name = segment_name(base)
        for path in directory.glob("*" + LOG_SUFFIX):
            other = parse_segment_name(path.name)
            if other is not None and base <= other < max(end, base + 1):
                for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIMEINDEX_SUFFIX):
                    old = directory / (segment_name(other) + suffix)
                    # The new index files of this segment may already be in place; an
                    # index that is not the new one would not match, so drop it too.
                    if other != base or not (directory / (name + suffix + SWAP)).exists():
                        old.unlink(missing_ok=True)
        _install_swap(directory, name)
        fsync_dir(directory)
        log.warning("recovery: finished an interrupted compaction swap into %s",
                    directory / (name + LOG_SUFFIX))
    for path in sorted(directory.iterdir()):
        if path.name.endswith(SWAP):  # index swaps renamed before their log: not committed
            log.warning("recovery: removed %s, left by a compaction that did not commit", path)
            path.unlink()


def compact_segments(
    directory: Path,
    segments: Sequence[LogSegment],
    config: LogConfig,
    now_ms: int,
    swap_in: Callable[[Sequence[LogSegment], LogSegment], bool],
) -> CompactionStats:
    """Cleans the given sealed segments. The cleaning reads and writes files only, so it
    may run beside appends and reads; `swap_in(group, cleaned)` then installs each cleaned
    group (under the log's lock) and says whether it still could."""
    latest = latest_offsets(segments)
    horizon = now_ms - config.delete_retention_ms
    before = sum(s.size for s in segments)
    after = 0
    cleaned_count = 0
    removed_total = 0
    for group in group_segments(segments, config.segment_bytes):
        cleaned, removed = clean_group(directory, group, latest, horizon,
                                       config.index_interval_bytes)
        if removed == 0 and len(group) == 1:
            cleaned.delete_files()
            after += group[0].size
            continue
        _crash_point("cleaned")
        if not swap_in(group, cleaned):
            after += sum(s.size for s in group)
            continue
        after += cleaned.size
        cleaned_count += len(group)
        removed_total += removed
    return CompactionStats(cleaned_count, before, after, removed_total)


def install(directory: Path, cleaned: LogSegment, group: Sequence[LogSegment],
            index_interval: int) -> LogSegment:
    """Commits the swap of a cleaned group on disk and opens the segment that replaces
    it."""
    commit_swap(directory, cleaned, group)
    fresh = LogSegment(directory, cleaned.base_offset)
    if not fresh.load_clean(0):
        fresh.recover(0, index_interval, verify=False)
        fresh.sync_index_files()
    return fresh


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
