"""A partition log: a directory of segments, of which the last is the active one.

Layout of a partition directory:
  <20-digit base offset>.log        RecordBatch v2 batches, back to back
  <20-digit base offset>.index      sparse offset index (see index.py)
  <20-digit base offset>.timeindex  sparse time index
  recovery-point                    base offset of the active segment at the last flush:
                                    segments before it were fsynced whole
  durable-end.0, durable-end.1      the log end offset at the last completed flush, and
                                    the boot it was in (see durable_end.py)
  .clean_shutdown                   written by close(), removed by open()
  *.deleted                         files of segments retention dropped, not yet removed
  reset-to                          present only while reset_to() runs: open() completes
                                    an interrupted reset (see reset_to)
  log-start-offset                  the log start offset set by advance_start (Kafka's
                                    DeleteRecords), when it lies above the first segment

Thread safety: appends and truncation are serialized by the caller (the broker's event
loop); flush may run in another thread (the broker's fsync thread) between the appends it
covers and the next, and so may retention and compaction, and reads from any thread: an
internal lock keeps the segment list consistent, and a segment's own lock keeps a flush
from touching a segment closed meanwhile. Compaction reads and
writes files outside the lock and takes it only to swap a cleaned group in, which it
skips if the group changed meanwhile.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from odradek.records.batch import (
    check_batch,
    first_corrupt,
    set_max_timestamp,
    set_offset_and_epoch,
    validate_batches,
)
from odradek.storage import cleaner, durable_end
from odradek.storage.cleaner import CompactionStats, fsync_dir
from odradek.storage.config import LogConfig
from odradek.storage.durable_end import DurableEndFile
from odradek.storage.segment import (
    INDEX_SUFFIX,
    INT32_MAX,
    LOG_SUFFIX,
    TIMEINDEX_SUFFIX,
    AppendedBatch,
    LogSegment,
    ScanError,
    parse_segment_name,
)

log = logging.getLogger("odradek.storage")

CLEAN_SHUTDOWN = ".clean_shutdown"
RECOVERY_POINT = "recovery-point"
RESET_MARKER = "reset-to"
LOG_START = "log-start-offset"


class OffsetOutOfRangeError(Exception):
    reason = "OFFSET_OUT_OF_RANGE"

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(
            f"offset {offset} is out of range: valid offsets are {log_start_offset} to "
            f"{log_end_offset} (the log end offset)")
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class CorruptBatchError(Exception):
    """A stored batch failed its check (CRC-32C, framing) when read: the bytes changed at
    rest. Raised instead of serving them; ``offset`` is the batch's base offset, where the
    log must be cut to be repaired."""

    reason = "CORRUPT_RECORD"

    def __init__(self, offset: int, path: Path, position: int, detail: str) -> None:
        super().__init__(f"corrupt batch at offset {offset} in {path} (byte {position}): "
                         f"{detail}")
        self.offset = offset
        self.path = path
        self.position = position
        self.detail = detail


@dataclass(frozen=True)
class AppendInfo:
    base_offset: int
    last_offset: int
    log_append_time_ms: int  # -1 unless the topic uses LogAppendTime
    max_timestamp: int


@dataclass(frozen=True)
class ReadResult:
    data: bytes
    next_offset: int  # after the last returned batch; the requested offset if none


DELETED_SUFFIX = ".deleted"


def remove_files(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class PartitionLog:
    def __init__(self, directory: Path, config: LogConfig, clock: Callable[[], int],
                 segments: list[LogSegment], recovery_point: int, start: int = 0) -> None:
        self.directory = directory
        # The log start offset advance_start set; below the first segment it means nothing.
        self._start = start
        self.config = config
        self._clock = clock
        self._segments = segments
        self._bases = [s.base_offset for s in segments]
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()  # one flush at a time (loop timer, fsync thread)
        self._recovery_point = recovery_point
        self._unflushed_messages = 0
        self._last_flush_ms = clock()
        self._active_since_ms = self._last_flush_ms  # what segment.ms counts from
        self._dir_dirty = False
        self._first_dirty = segments[0].base_offset  # compaction: start of uncleaned data
        self._closed = False
        self._durable_end = DurableEndFile(directory)
        # Told the seconds each flush that wrote something spent fsyncing (for metrics).
        self.flush_observer: Callable[[float], None] | None = None
        # Removes the files of segments that retention dropped (renamed *.deleted).
        self.file_remover: Callable[[list[Path]], None] = remove_files
        # Told of every corrupt batch a read finds (before it raises): the broker counts
        # it and repairs the replica. It may be called from any thread that reads.
        self.corruption_observer: Callable[[CorruptBatchError], None] | None = None

    # ------------------------------------------------------------------- open

    @classmethod
    def open(cls, directory: Path, config: LogConfig,
             clock: Callable[[], int] = wall_clock_ms, trust_sealed: bool = True
             ) -> PartitionLog:
        """Opens the partition in directory, creating it or recovering it. With
        trust_sealed=False every segment is scanned (CRCs included), not only those a
        crash may have left unflushed: a small log whose corruption must be cut before
        anything reads it (the metadata log)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        marker = directory / CLEAN_SHUTDOWN
        clean = marker.exists()
        if clean:
            marker.unlink()
        recovery_point = _read_recovery_point(directory)
        reset = _read_reset_marker(directory)
        if reset is not None:
            _finish_reset(directory, reset)
            recovery_point = reset
        cleaner.recover_interrupted(directory)
        bases = _cleanup_directory(directory)
        segments = _load_segments(directory, bases, config, clean, recovery_point,
                                  trust_sealed)
        if not segments:
            segments = [LogSegment(directory, 0, truncate=True)]
        plog = cls(directory, config, clock, segments,
                   min(recovery_point, segments[-1].base_offset),
                   min(_read_offset_file(directory / LOG_START), segments[-1].next_offset))
        plog._settle_durable_end(clean or reset is not None, fresh=not bases)
        plog.delete_segments_below(plog.log_start_offset)  # an advance_start cut short
        return plog

    def _settle_durable_end(self, synced: bool, fresh: bool) -> None:
        """After recovery: cuts what a restart of the machine may have left unsynced past
        the last completed flush (durable_end.py), and records the end to trust next."""
        boot = durable_end.boot_id_source(self.directory)
        end = self.log_end_offset
        recorded = self._durable_end.load()
        if synced:  # a clean stop, or a reset just completed: everything is durable
            self._durable_end.record(end, boot)
            return
        if recorded is None and self._durable_end.exists():
            # No slot whole: the first record never completed, nor any flush.
            recorded = durable_end.DurableEnd(0, 0, durable_end.UNKNOWN_BOOT)
        if recorded is None:
            self._durable_end.create()
            if not fresh:  # a log written before the files existed: make the claim true
                for seg in self._segments:
                    seg.flush()
                fsync_dir(self.directory)
            self._durable_end.record(end, boot, sync=not fresh)
            return
        if recorded.same_boot(boot):
            return  # a killed process: the page cache kept every byte written
        cut = max(recorded.end_offset, self.log_start_offset)
        if end > cut:
            log.warning("recovery: the machine restarted since the last completed flush of %s; "
                        "dropping offsets %d to %d, written after it (not trusted: see "
                        "durable_end.py)", self.directory, cut, end - 1)
            self.truncate_to(cut)
        self._durable_end.record(min(end, cut), boot)

    def update_config(self, config: LogConfig) -> None:
        self.config = config

    # ------------------------------------------------------------- properties

    @property
    def log_start_offset(self) -> int:
        return max(self._segments[0].base_offset, self._start)

    @property
    def log_end_offset(self) -> int:
        return self._segments[-1].next_offset

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def active_segment_base(self) -> int:
        """Base offset of the active (last) segment: it changes when the log rolls."""
        return self._segments[-1].base_offset

    @property
    def segments(self) -> Sequence[LogSegment]:
        """The segments, oldest first (read-only view for tools and tests)."""
        return tuple(self._segments)

    # ----------------------------------------------------------------- append

    def append(self, records: bytes, leader_epoch: int = 0) -> AppendInfo:
        """Producer path: validates, assigns offsets and stores all batches or none."""
        self._check_open()
        config = self.config
        headers = validate_batches(records, config.max_message_bytes)
        buf = bytearray(records)
        now = self._clock()
        append_time = config.log_append_time
        with self._lock:
            first = self.log_end_offset
            span = sum(h.last_offset_delta + 1 for h in headers)
            seg = self._maybe_roll(len(buf), first + span - 1, now)
            offset = first
            pos = 0
            batches = []
            max_ts = -1
            messages = 0
            for h in headers:
                set_offset_and_epoch(buf, pos, offset, leader_epoch)
                if append_time:
                    set_max_timestamp(buf, pos, now, True)
                    batch_ts = now
                else:
                    batch_ts = h.max_timestamp
                next_offset = offset + h.last_offset_delta + 1
                batches.append(AppendedBatch(pos, offset, next_offset, batch_ts, h.size))
                max_ts = max(max_ts, batch_ts)
                messages += h.record_count
                offset = next_offset
                pos += h.size
            seg.append(buf, batches, config.index_interval_bytes)
            self._unflushed_messages += messages
        if self._unflushed_messages >= config.flush_messages:
            self.flush()
        return AppendInfo(first, offset - 1, now if append_time else -1, max_ts)

    def append_replicated(self, records: bytes | bytearray, flush: bool = True) -> AppendInfo:
        """Follower/Raft path: batches keep their offsets and epochs; the first must start
        at the log end offset and offsets must increase. flush=False leaves the fsync that
        flush.messages asks for to the caller (who then calls flush() before relying on
        the batches being durable)."""
        self._check_open()
        config = self.config
        end = len(records)
        if end == 0:
            raise ValueError("append_replicated needs at least one batch")
        batches: list[AppendedBatch] = []
        expected = self.log_end_offset
        pos = 0
        max_ts = -1
        messages = 0
        while pos < end:
            h = check_batch(records, pos, end)
            if not batches and h.base_offset != expected:
                raise ValueError(f"replicated batches start at offset {h.base_offset} but the "
                                 f"log end offset is {expected}")
            if h.base_offset < expected:
                raise ValueError(f"replicated batch at byte {pos} has base offset "
                                 f"{h.base_offset}, below the previous batch's next offset "
                                 f"{expected}")
            batches.append(AppendedBatch(pos, h.base_offset, h.next_offset, h.max_timestamp,
                                         h.size))
            max_ts = max(max_ts, h.max_timestamp)
            messages += h.record_count
            expected = h.next_offset
            pos += h.size
        now = self._clock()
        with self._lock:
            if self.log_end_offset != batches[0].base_offset:
                raise ValueError("the log changed while the batches were checked")
            seg = self._maybe_roll(end, expected - 1, now)
            seg.append(records, batches, config.index_interval_bytes)
            self._unflushed_messages += messages
        if flush and self._unflushed_messages >= config.flush_messages:
            self.flush()
        return AppendInfo(batches[0].base_offset, expected - 1,
                          max_ts if config.log_append_time else -1, max_ts)

    def _maybe_roll(self, size: int, last_offset: int, now: int) -> LogSegment:
        seg = self._segments[-1]
        if seg.size == 0:
            self._active_since_ms = now
            return seg
        config = self.config
        if (seg.size + size > config.segment_bytes
                or now - self._active_since_ms > config.segment_ms
                or last_offset - seg.base_offset > INT32_MAX):
            return self._roll(now)
        return seg

    def _roll(self, now: int) -> LogSegment:
        old = self._segments[-1]
        old.seal()
        new = LogSegment(self.directory, old.next_offset, truncate=True)
        self._segments.append(new)
        self._bases.append(new.base_offset)
        self._active_since_ms = now
        self._dir_dirty = True
        log.debug("rolled %s: new segment %s", self.directory, new.log_path.name)
        return new

    # ------------------------------------------------------------------- read

    def read(self, offset: int, max_bytes: int, max_offset: int | None = None,
             verify: bool = True) -> ReadResult:
        """Stored bytes of whole batches from the one holding offset; see the module doc.
        Raises CorruptBatchError (verify) rather than return a batch that fails its CRC."""
        with self._lock:
            self._check_open()
            start = self.log_start_offset
            end = self._segments[-1].next_offset
            if offset < start or offset > end:
                raise OffsetOutOfRangeError(offset, start, end)
            if offset == end or (max_offset is not None and offset >= max_offset):
                return ReadResult(b"", offset)
            i = bisect_right(self._bases, offset) - 1
            for seg in self._segments[i:]:
                if max_offset is not None and seg.base_offset >= max_offset:
                    break
                found = seg.find(offset)
                if found is None:
                    continue
                data, next_offset = seg.read(found[0], max_bytes, max_offset)
                if verify:
                    self._verify(seg, found[0], data)
                return ReadResult(data, offset if next_offset is None else next_offset)
            return ReadResult(b"", offset)

    def _verify(self, seg: LogSegment, start: int, data: bytes) -> None:
        """Checks the CRC of every batch about to leave the log. A clean start trusts
        sealed segments without reading them, so a bit flipped at rest is found here or
        nowhere (crc32c is a C extension: this costs a small part of a fetch)."""
        bad = first_corrupt(data)
        if bad is None:
            return
        pos, exc = bad
        base = int.from_bytes(data[pos : pos + 8], "big", signed=True) \
            if len(data) - pos >= 8 else seg.base_offset
        detail = re.sub(r"batch at byte \d+ ", "batch ", str(exc))
        error = CorruptBatchError(max(base, seg.base_offset), seg.log_path, start + pos,
                                  f"{exc.reason}: {detail}")
        log.error("%s", error)
        if self.corruption_observer is not None:
            self.corruption_observer(error)
        raise error

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with timestamp >= timestamp_ms."""
        with self._lock:
            self._check_open()
            for seg in self._segments:
                hit = seg.offset_for_timestamp(timestamp_ms)
                if hit is not None:
                    return hit
        return None

    # --------------------------------------------------------------- truncate

    def truncate_to(self, offset: int) -> None:
        """Drops everything at and after offset. Whole batches only: when offset falls
        inside a batch, that batch goes too and the log end offset becomes its base."""
        self._check_open()
        if offset < 0:
            raise ValueError(f"cannot truncate to negative offset {offset}")
        with self._lock:
            if offset >= self.log_end_offset:
                return
            self._durable_end.lower_to(offset, durable_end.boot_id_source(self.directory))
            interval = self.config.index_interval_bytes
            if offset <= self.log_start_offset:
                for seg in self._segments:
                    seg.delete_files()
                self._segments = [LogSegment(self.directory, offset, truncate=True)]
                self._set_start(offset)
            else:
                i = bisect_right(self._bases, offset) - 1
                for seg in self._segments[i + 1:]:
                    seg.delete_files()
                del self._segments[i + 1:]
                self._segments[i].truncate_to(offset, interval)
            self._bases = [s.base_offset for s in self._segments]
            self._active_since_ms = self._clock()
            self._dir_dirty = True
            self._first_dirty = min(self._first_dirty, self.log_end_offset)
            if self._recovery_point > self._segments[-1].base_offset:
                self._recovery_point = self._segments[-1].base_offset
                _write_recovery_point(self.directory, self._recovery_point)
            log.info("truncated %s to offset %d (log end offset now %d)", self.directory,
                     offset, self.log_end_offset)

    def reset_to(self, offset: int) -> None:
        """Drops every segment and starts an empty log whose log start offset and log end
        offset are both ``offset`` (a Raft follower installing a leader's snapshot).

        Crash-safe: a marker file naming ``offset`` is made durable first; then the old
        segments are deleted, the empty segment created and the directory fsynced; only
        then is the marker removed (and that removal made durable). ``open`` finds a
        marker left by a crash in between and completes the reset, so the log is either
        the old one or the reset one, never a mix."""
        self._check_open()
        if offset < 0:
            raise ValueError(f"cannot reset to negative offset {offset}")
        with self._lock:
            _write_reset_marker(self.directory, offset)
            for seg in self._segments:
                seg.delete_files()
            self._segments = [LogSegment(self.directory, offset, truncate=True)]
            self._bases = [offset]
            self._set_start(offset)
            self._segments[0].flush()
            _write_recovery_point(self.directory, offset)
            self._recovery_point = offset
            self._durable_end.record(offset, durable_end.boot_id_source(self.directory))
            fsync_dir(self.directory)
            (self.directory / RESET_MARKER).unlink()
            fsync_dir(self.directory)
            self._dir_dirty = False
            self._unflushed_messages = 0
            self._active_since_ms = self._clock()
            self._first_dirty = offset
            log.info("reset %s to offset %d", self.directory, offset)

    # ------------------------------------------------------------------ flush

    def flush(self) -> None:
        """fsyncs the data and indexes of every segment written since the last flush."""
        with self._flush_lock:
            with self._lock:
                if self._closed:
                    return
                active = self._segments[-1]
                dirty = [s for s in self._segments if s.unflushed]
                dir_dirty = self._dir_dirty
                self._dir_dirty = False
                point = active.base_offset
                end, generation = self.log_end_offset, self._durable_end.generation
            started = time.perf_counter()
            for seg in dirty:
                seg.flush(release_indexes=seg is not active)
            if dir_dirty:
                fsync_dir(self.directory)
            self._durable_end.record_flushed(end, durable_end.boot_id_source(self.directory),
                                             generation)
            if point != self._recovery_point:
                _write_recovery_point(self.directory, point)
                self._recovery_point = point
            self._unflushed_messages = 0
            self._last_flush_ms = self._clock()
        if self.flush_observer is not None and (dirty or dir_dirty):
            self.flush_observer(time.perf_counter() - started)

    @property
    def flush_owed(self) -> bool:
        """Do the appends since the last flush reach flush.messages?"""
        return self._unflushed_messages >= self.config.flush_messages

    def flush_if_due(self) -> bool:
        """Flushes when flush.ms has passed since the last flush and data is unflushed."""
        if self._closed or self._unflushed_messages == 0:
            return False
        if self._clock() - self._last_flush_ms < self.config.flush_ms:
            return False
        self.flush()
        return True

    # -------------------------------------------------------------- retention

    def enforce_retention(self) -> int:
        """Deletes the oldest segments past retention.ms or retention.bytes (never the
        active one); returns how many went."""
        self._check_open()
        config = self.config
        if not config.delete:
            return 0
        now = self._clock()
        with self._lock:
            total = self.size_bytes
            doomed: list[LogSegment] = []
            for seg in self._segments[:-1]:
                by_time = (config.retention_ms >= 0
                           and now - seg.max_timestamp > config.retention_ms)
                by_size = (config.retention_bytes >= 0
                           and total - seg.size >= config.retention_bytes)
                if not (by_time or by_size):
                    break
                doomed.append(seg)
                total -= seg.size
                log.info("retention: deleting %s (%d bytes, largest timestamp %d, by %s)",
                         seg.log_path, seg.size, seg.max_timestamp,
                         "time" if by_time else "size")
            self._drop_oldest(doomed)
        return len(doomed)

    def delete_segments_below(self, offset: int) -> int:
        """Deletes the sealed segments that hold only offsets below `offset` (a snapshot
        covers them); returns how many went."""
        self._check_open()
        with self._lock:
            doomed: list[LogSegment] = []
            for seg, nxt in zip(self._segments[:-1], self._segments[1:], strict=False):
                if nxt.base_offset > offset:
                    break
                doomed.append(seg)
            self._drop_oldest(doomed)
        return len(doomed)

    def advance_start(self, offset: int) -> int:
        """Moves the log start offset up to `offset` (Kafka's DeleteRecords): reads below
        it are out of range, and the segments wholly below it are deleted (the active one
        too, by rolling first, when every record is below). Durable when it returns. An
        offset at or below the log start changes nothing; returns the log start offset."""
        self._check_open()
        with self._lock:
            end = self.log_end_offset
            if offset > end:
                raise OffsetOutOfRangeError(offset, self.log_start_offset, end)
            if offset <= self.log_start_offset:
                return self.log_start_offset
            self._set_start(offset)
            if offset == end and self._segments[-1].size > 0:
                self._roll(self._clock())
            dropped = self.delete_segments_below(offset)
            log.info("log start offset of %s advanced to %d (%d segments deleted)",
                     self.directory, offset, dropped)
            return self.log_start_offset

    def _set_start(self, offset: int) -> None:
        """Durably records the log start offset (the caller holds the lock)."""
        self._start = offset
        _write_offset_file(self.directory / LOG_START, offset)

    def _drop_oldest(self, doomed: list[LogSegment]) -> None:
        """Deletes the first len(doomed) segments (the caller holds the lock)."""
        if not doomed:
            return
        del self._segments[: len(doomed)]
        self._bases = [s.base_offset for s in self._segments]
        self._first_dirty = max(self._first_dirty, self.log_start_offset)
        # Renamed now, removed by file_remover (perhaps in another thread: unlinking a
        # large file can take long); a crash before leaves files that open() removes.
        renamed = []
        for seg in doomed:
            seg.close()
            for path in seg.files():
                target = path.with_name(path.name + DELETED_SUFFIX)
                try:
                    path.rename(target)
                except FileNotFoundError:
                    continue
                renamed.append(target)
        self._dir_dirty = True
        self.file_remover(renamed)

    # ------------------------------------------------------------- compaction

    def compact(self, upto: int | None = None) -> CompactionStats:
        """Keeps the latest record per key in the sealed segments (cleanup.policy compact);
        runs when the dirty part is at least min.cleanable.dirty.ratio of them.

        Only segments that end at or below `upto` are cleaned (a replica passes its high
        watermark): which record of a key is the latest depends on every later segment
        the cleaner reads, and records above the high watermark may still be truncated
        (a new leader's log diverged), taking the key's latest value with them."""
        self._check_open()
        config = self.config
        if not config.compact:
            return CompactionStats()
        now = self._clock()
        with self._lock:
            sealed = self._segments[:-1]
            following = {s.base_offset: n.base_offset
                         for s, n in zip(self._segments, self._segments[1:], strict=False)}
        cleanable = []
        for seg in sealed:
            if upto is not None and seg.next_offset > upto:
                break
            if (config.min_compaction_lag_ms > 0
                    and seg.max_timestamp > now - config.min_compaction_lag_ms):
                break
            cleanable.append(seg)
        if not cleanable:
            return CompactionStats()
        total = sum(s.size for s in cleanable)
        dirty = sum(s.size for s in cleanable if s.base_offset >= self._first_dirty)
        if dirty == 0 or dirty < total * config.min_cleanable_dirty_ratio:
            return CompactionStats()
        end = following[cleanable[-1].base_offset]
        expected = set(cleanable)  # what the cleaner reads; updated by each swap
        try:
            stats = cleaner.compact_segments(
                self.directory, cleanable, config, now,
                lambda group, cleaned: self._swap_in(group, cleaned, expected))
        except (OSError, ValueError):
            with self._lock:
                changed = self._closed or not set(cleanable) <= set(self._segments)
            if not changed:
                raise
            # Truncated, reset or closed while it cleaned (another thread): next time.
            log.info("compaction of %s stopped: the log changed meanwhile", self.directory)
            return CompactionStats()
        self._first_dirty = end
        if stats.segments_cleaned:
            log.info("compacted %s: %d segments, %d -> %d bytes, %d records removed",
                     self.directory, stats.segments_cleaned, stats.bytes_before,
                     stats.bytes_after, stats.records_removed)
        return stats

    def _swap_in(self, group: Sequence[LogSegment], cleaned: LogSegment,
                 read: set[LogSegment]) -> bool:
        """Replaces the group by its cleaned segment if every segment the cleaner read is
        still in the log: compaction may run in another thread, and a truncation, a reset
        or a close may have come first (then the cleaned files are dropped)."""
        with self._lock:
            present = set(self._segments)
            i = self._segments.index(group[0]) if group[0] in present else -1
            if self._closed or i < 0 or not read <= present \
                    or i + len(group) >= len(self._segments):
                cleaned.delete_files()
                return False
            fresh = cleaner.install(self.directory, cleaned, group,
                                    self.config.index_interval_bytes)
            self._segments[i : i + len(group)] = [fresh]
            self._bases = [s.base_offset for s in self._segments]
            for seg in group:
                seg.close()
            read.difference_update(group)
            read.add(fresh)
            return True

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Flushes, closes the files and marks the shutdown clean."""
        if self._closed:
            return
        self.flush()
        self._close_files()
        (self.directory / CLEAN_SHUTDOWN).touch()
        fsync_dir(self.directory)

    def delete(self) -> None:
        """Closes and removes the partition's directory."""
        self._close_files()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _close_files(self) -> None:
        with self._lock:
            self._closed = True
            for seg in self._segments:
                seg.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"the log in {self.directory} is closed")


# ------------------------------------------------------------------ recovery


def _read_recovery_point(directory: Path) -> int:
    try:
        return int((directory / RECOVERY_POINT).read_text().strip())
    except (OSError, ValueError):
        return 0


def _write_recovery_point(directory: Path, point: int) -> None:
    tmp = directory / (RECOVERY_POINT + ".tmp")
    tmp.write_text(f"{point}\n")
    os.replace(tmp, directory / RECOVERY_POINT)


def _read_offset_file(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except FileNotFoundError:
        return 0
    except ValueError:
        # Written to a temporary file, fsynced and renamed: a partial one cannot appear.
        raise ValueError(f"unreadable offset in {path}: {path.read_text()!r}") from None


def _write_offset_file(path: Path, offset: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(f"{offset}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _read_reset_marker(directory: Path) -> int | None:
    try:
        text = (directory / RESET_MARKER).read_text()
    except FileNotFoundError:
        return None
    try:
        return int(text.strip())
    except ValueError:
        # The marker is written to a temporary file, fsynced and renamed: a partial one
        # cannot appear. Refuse to guess what an unreadable one meant.
        raise ValueError(f"unreadable reset marker in {directory}: {text!r}") from None


def _write_reset_marker(directory: Path, offset: int) -> None:
    tmp = directory / (RESET_MARKER + ".tmp")
    with open(tmp, "w") as f:
        f.write(f"{offset}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / RESET_MARKER)
    fsync_dir(directory)


def _finish_reset(directory: Path, offset: int) -> None:
    """Completes a reset_to(offset) interrupted by a crash: every segment goes, an empty
    one based at offset takes their place, and the marker is removed last."""
    log.warning("recovery: completing an interrupted reset of %s to offset %d",
                directory, offset)
    for path in sorted(directory.iterdir()):
        name = path.name
        for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIMEINDEX_SUFFIX):
            if name.endswith(suffix) and parse_segment_name(name[: -len(suffix)]
                                                            + LOG_SUFFIX) is not None:
                path.unlink()
    fresh = LogSegment(directory, offset, truncate=True)
    fresh.flush()
    fresh.close()
    _write_offset_file(directory / LOG_START, offset)
    _write_recovery_point(directory, offset)
    fsync_dir(directory)
    (directory / RESET_MARKER).unlink()
    fsync_dir(directory)


def _cleanup_directory(directory: Path) -> list[int]:
    """Removes stray temp and orphan index files; returns the segment base offsets."""
    bases = []
    for path in directory.iterdir():
        base = parse_segment_name(path.name)
        if base is not None:
            bases.append(base)
    present = set(bases)
    for path in directory.iterdir():
        name = path.name
        if name.endswith(".tmp") or name.endswith(DELETED_SUFFIX):
            path.unlink()
            continue
        for suffix in (INDEX_SUFFIX, TIMEINDEX_SUFFIX):
            if name.endswith(suffix):
                orphan = parse_segment_name(name[: -len(suffix)] + LOG_SUFFIX)
                if orphan is not None and orphan not in present:
                    log.warning("recovery: removed %s, which has no log segment", path)
                    path.unlink()
    return sorted(bases)


def _load_segments(directory: Path, bases: list[int], config: LogConfig, clean: bool,
                   recovery_point: int, trust_sealed: bool) -> list[LogSegment]:
    interval = config.index_interval_bytes
    segments: list[LogSegment] = []
    prev_next = 0
    for i, base in enumerate(bases):
        seg = LogSegment(directory, base)
        last = i == len(bases) - 1
        trusted = trust_sealed and not last and (clean or bases[i + 1] <= recovery_point)
        error: ScanError | None = None
        if base < prev_next:
            error = ScanError(0, f"segment base offset {base} overlaps the previous segment, "
                              f"which ends at offset {prev_next}")
        elif trusted and seg.load_clean(prev_next):
            pass
        else:
            if trusted:
                log.warning("recovery: index of %s is missing or inconsistent; rebuilding "
                            "from the log", seg.log_path)
            error = seg.recover(prev_next, interval)
            if error is None and not last:
                seg.add_closing_time_entry()
            if error is None and seg.sync_index_files():
                log.info("recovery: rebuilt the indexes of %s", seg.log_path)
        segments.append(seg)
        if error is not None:
            dropped = seg.truncate_at(error.position, interval)
            log.warning("recovery: truncated %s at byte %d, dropping %d bytes: %s",
                        seg.log_path, error.position, dropped, error.reason)
            for later in bases[i + 1:]:
                doomed = LogSegment(directory, later)
                log.warning("recovery: deleted segment %s (%d bytes), which follows the "
                            "corruption in %s", doomed.log_path, doomed.size, seg.log_path.name)
                doomed.delete_files()
            break
        if seg.size:
            prev_next = seg.next_offset
    return segments
