"""One segment of a partition log: a `.log` file of RecordBatch v2 batches, back to back,
with its sparse offset index and time index.

The segment never decodes records. It learns about batches from their 61-byte headers,
and checks CRCs when recovering from an unclean shutdown; the partition log checks them
on every read (PartitionLog.read), which is what catches a bit flipped at rest in a
segment a clean start trusted.
"""

from __future__ import annotations

import os
import re
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from odradek.records.batch import (
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    InvalidRecordError,
    check_batch,
    parse_header,
)
from odradek.records.reader import decode_batch
from odradek.storage.index import OffsetIndex, TimeIndex

INT32_MAX = 2**31 - 1
LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIMEINDEX_SUFFIX = ".timeindex"
_CHUNK = 1 << 20
_OFFSET_LENGTH = struct.Struct(">qi")
_LAST_DELTA = struct.Struct(">i")
_LAST_DELTA_POS = 23
_MIN_LENGTH = BATCH_HEADER_SIZE - LOG_OVERHEAD


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


def parse_segment_name(name: str) -> int | None:
    """The base offset of `<20 digits>.log`, else None."""
    m = re.fullmatch(r"(\d{20})\.log", name)
    return int(m.group(1)) if m else None


@dataclass(frozen=True, slots=True)
class ScanError:
    position: int
    reason: str


@dataclass(slots=True)
class AppendedBatch:
    """What the segment needs to know of a batch it is given to append."""

    position: int  # inside the buffer handed to append()
    base_offset: int
    next_offset: int
    max_timestamp: int
    size: int


class LogSegment:
    def __init__(self, directory: Path, base_offset: int, suffix: str = "",
                 truncate: bool = False) -> None:
        self.directory = directory
        self.base_offset = base_offset
        name = segment_name(base_offset)
        self.log_path = directory / (name + LOG_SUFFIX + suffix)
        self.index = OffsetIndex(directory / (name + INDEX_SUFFIX + suffix))
        self.time_index = TimeIndex(directory / (name + TIMEINDEX_SUFFIX + suffix))
        flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if truncate else 0)
        self.fd = os.open(self.log_path, flags, 0o644)
        if truncate:
            for idx in (self.index, self.time_index):
                idx.path.unlink(missing_ok=True)
        self.size = os.fstat(self.fd).st_size
        self.next_offset = base_offset  # after the last batch; base_offset when empty
        self.max_timestamp = -1  # largest timestamp in the segment
        self.first_batch_timestamp: int | None = None  # what segment.ms counts from
        self._bytes_since_index = 0
        self._max_ts_at_index = -1  # largest timestamp before the scan position
        self.unflushed = False
        self.closed = False
        # A flush may run in the broker's fsync thread while the event loop closes the
        # segment (retention, compaction's swap, a truncation): never fsync a closed fd.
        self._file_lock = threading.Lock()

    # ---------------------------------------------------------------- loading

    def load_clean(self, min_offset: int) -> bool:
        """Trusts the log after a clean shutdown: loads the indexes and reads only the
        headers after the last index entry. False when anything looks wrong (the caller
        then runs recover())."""
        if not (self.index.load() and self.time_index.load()):
            return False
        if self.size == 0:
            return len(self.index) == 0 and len(self.time_index) == 0
        if not self.index.consistent(self.size):
            return False
        first = self._header_at(0)
        if first is None or first.base_offset < max(min_offset, self.base_offset):
            return False
        rel, pos = self.index.lookup(INT32_MAX)
        last: BatchHeader | None = None
        end = pos
        for p, header in self.headers(pos):
            if last is None and len(self.index) and header.base_offset - self.base_offset != rel:
                return False
            if last is not None and header.base_offset < last.next_offset:
                return False
            last = header
            end = p + header.size
        if last is None or end != self.size:
            return False
        next_rel = last.next_offset - self.base_offset
        if not self.time_index.consistent(next_rel) or self.time_index.last_offset != next_rel:
            return False
        self.next_offset = last.next_offset
        self.max_timestamp = self.time_index.last_timestamp
        self.first_batch_timestamp = first.max_timestamp
        # The segment is sealed; appends (after a truncation) index from the end.
        self._bytes_since_index = self.size - pos
        self._max_ts_at_index = self.max_timestamp
        return True

    def recover(self, min_offset: int, index_interval: int,
                verify: bool = True) -> ScanError | None:
        """Reads every batch (checking CRCs when verify), rebuilds both indexes and the
        offsets and timestamps. Stops at the first bad batch and returns where and why;
        the caller truncates there."""
        self.index.clear()
        self.time_index.clear()
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self.first_batch_timestamp = None
        self._bytes_since_index = 0
        self._max_ts_at_index = -1
        expected = max(min_offset, self.base_offset)
        error: ScanError | None = None
        try:
            for pos, header in self._scan(verify):
                if header.base_offset < expected:
                    raise _ScanFailure(pos, f"batch base offset {header.base_offset} is below "
                                       f"the previous batch's next offset {expected}")
                if header.last_offset - self.base_offset > INT32_MAX:
                    raise _ScanFailure(pos, f"batch offsets {header.base_offset}.."
                                       f"{header.last_offset} do not fit a segment based at "
                                       f"{self.base_offset}")
                self._note_batch(pos, header.base_offset, header.next_offset,
                                 header.max_timestamp, header.size, index_interval)
                expected = header.next_offset
        except _ScanFailure as exc:
            error = ScanError(exc.position, exc.reason)
        return error

    def sync_index_files(self) -> bool:
        """After recover(): writes the rebuilt indexes unless the files already hold
        exactly them. True when a file was rewritten."""
        rewritten = False
        for idx in (self.index, self.time_index):
            keys, values = idx.keys, idx.values
            on_disk = type(idx)(idx.path)
            if not on_disk.load() or on_disk.keys != keys or on_disk.values != values:
                idx.rewrite()
                rewritten = True
            else:
                idx.mark_written()
        return rewritten

    # ----------------------------------------------------------------- append

    def append(self, buf: bytes | bytearray, batches: list[AppendedBatch],
               index_interval: int) -> None:
        """Writes buf (whole batches) at the end; all of it or, on error, none of it."""
        start = self.size
        try:
            _pwrite_all(self.fd, buf, start)
        except BaseException:
            os.ftruncate(self.fd, start)
            raise
        for b in batches:
            self._note_batch(start + b.position, b.base_offset, b.next_offset,
                             b.max_timestamp, b.size, index_interval)
        self.size = start + len(buf)
        self.index.write()
        self.time_index.write()
        self.unflushed = True

    def _note_batch(self, pos: int, base_offset: int, next_offset: int, max_timestamp: int,
                    size: int, index_interval: int) -> None:
        if pos > 0 and self._bytes_since_index >= index_interval:
            rel = base_offset - self.base_offset
            self.index.add(rel, pos)
            if self._max_ts_at_index > self.time_index.last_timestamp:
                self.time_index.add(self._max_ts_at_index, rel)
            self._bytes_since_index = 0
        self._bytes_since_index += size
        if self.first_batch_timestamp is None:
            self.first_batch_timestamp = max_timestamp
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
        self._max_ts_at_index = self.max_timestamp
        self.next_offset = next_offset

    def add_closing_time_entry(self) -> None:
        """(largest timestamp, next offset) at the end of the time index, in memory."""
        rel = self.next_offset - self.base_offset
        if self.size and rel > self.time_index.last_offset:
            self.time_index.add(max(self.max_timestamp, self.time_index.last_timestamp), rel)

    def seal(self) -> None:
        """Called when the segment stops being active: the time index gets its closing
        entry (largest timestamp, next offset), which lets a clean start skip the scan."""
        self.add_closing_time_entry()
        for idx in (self.index, self.time_index):
            idx.ensure_file()
            idx.write()
        self.unflushed = True

    # ------------------------------------------------------------------- read

    def headers(self, pos: int, end: int | None = None) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of whole batches from pos (no CRC check)."""
        limit = self.size if end is None else end
        while pos + BATCH_HEADER_SIZE <= limit:
            header = self._header_at(pos)
            if header is None or header.batch_length < _MIN_LENGTH or pos + header.size > limit:
                return
            yield pos, header
            pos += header.size

    def _header_at(self, pos: int) -> BatchHeader | None:
        raw = os.pread(self.fd, BATCH_HEADER_SIZE, pos)
        if len(raw) < BATCH_HEADER_SIZE:
            return None
        return parse_header(raw)

    def find(self, offset: int) -> tuple[int, BatchHeader] | None:
        """The first batch whose last offset is >= offset (the one holding it, or the next
        one after a gap); None when the segment ends before."""
        if offset >= self.next_offset:
            return None
        _, pos = self.index.lookup(offset - self.base_offset)
        for p, header in self.headers(pos):
            if header.last_offset >= offset:
                return p, header
        return None

    def read(self, pos: int, max_bytes: int, max_offset: int | None) -> tuple[bytes, int | None]:
        """Whole batches from pos: as many as fit max_bytes (at least one), none whose base
        offset is >= max_offset. Returns (bytes, next offset after them or None)."""
        end = self.size
        want = min(max(max_bytes, BATCH_HEADER_SIZE), end - pos)
        data = os.pread(self.fd, want, pos)
        p = 0
        next_offset: int | None = None
        n = len(data)
        while p + BATCH_HEADER_SIZE <= n:
            base, length = _OFFSET_LENGTH.unpack_from(data, p)
            if max_offset is not None and base >= max_offset:
                break
            size = length + LOG_OVERHEAD
            if p + size > n:
                if p == 0 and pos + size <= end:
                    data = os.pread(self.fd, size, pos)
                    p = size
                    next_offset = base + _LAST_DELTA.unpack_from(data, _LAST_DELTA_POS)[0] + 1
                break
            next_offset = base + _LAST_DELTA.unpack_from(data, p + _LAST_DELTA_POS)[0] + 1
            p += size
        return (data if p == len(data) else data[:p]), next_offset

    def iter_batches(self, verify: bool = False) -> Iterator[tuple[BatchHeader, memoryview]]:
        """Every batch with its bytes, read in large chunks (for compaction)."""
        for _pos, header, view in self._scan_views(verify):
            yield header, view

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with timestamp >= timestamp, skipping
        control batches; None when the segment has none. Decodes one batch."""
        if self.max_timestamp < timestamp:
            return None
        start_rel = self.time_index.lower_bound(timestamp)
        _, pos = self.index.lookup(start_rel)
        for p, header in self.headers(pos):
            if header.is_control or header.max_timestamp < timestamp:
                continue
            for rec in decode_batch(os.pread(self.fd, header.size, p), verify=False):
                if rec.timestamp >= timestamp:
                    return rec.offset, rec.timestamp
        return None

    # --------------------------------------------------------------- truncate

    def truncate_to(self, offset: int, index_interval: int) -> int:
        """Drops the batch holding offset and everything after it; returns bytes dropped."""
        found = self.find(offset)
        if found is None:
            return 0
        pos = found[0]
        return self.truncate_at(pos, index_interval)

    def truncate_at(self, pos: int, index_interval: int) -> int:
        dropped = self.size - pos
        os.ftruncate(self.fd, pos)
        self.size = pos
        self.recover(0, index_interval, verify=False)
        self.index.rewrite()
        self.time_index.rewrite()
        self.unflushed = True
        return dropped

    # ---------------------------------------------------------------- durable

    def flush(self, release_indexes: bool = False) -> None:
        """fsyncs the data and indexes; release_indexes (a sealed segment) also closes
        the index files, which are read again on demand."""
        with self._file_lock:
            if self.closed:
                return
            os.fsync(self.fd)
            self.index.flush()
            self.time_index.flush()
            self.unflushed = False
            if release_indexes:
                self.index.close()
                self.time_index.close()

    def close(self) -> None:
        with self._file_lock:
            if self.closed:
                return
            self.index.close()
            self.time_index.close()
            os.close(self.fd)
            self.closed = True

    def files(self) -> list[Path]:
        return [self.log_path, self.index.path, self.time_index.path]

    def delete_files(self) -> None:
        self.close()
        for path in self.files():
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ scans

    def _scan(self, verify: bool) -> Iterator[tuple[int, BatchHeader]]:
        for pos, header, _view in self._scan_views(verify):
            yield pos, header

    def _scan_views(self, verify: bool) -> Iterator[tuple[int, BatchHeader, memoryview]]:
        """Walks the file in large reads. Raises _ScanFailure at the first batch that is
        torn (or, with verify, fails check_batch)."""
        end = self.size
        pos = 0
        buf = b""
        buf_start = 0
        while pos < end:
            rel = pos - buf_start
            if rel + BATCH_HEADER_SIZE > len(buf):
                buf = os.pread(self.fd, min(max(_CHUNK, BATCH_HEADER_SIZE), end - pos), pos)
                buf_start, rel = pos, 0
            if len(buf) < BATCH_HEADER_SIZE:
                raise _ScanFailure(pos, f"torn batch: {end - pos} bytes left, a batch header "
                                   f"needs {BATCH_HEADER_SIZE}")
            size = _OFFSET_LENGTH.unpack_from(buf, rel)[1] + LOG_OVERHEAD
            if size < BATCH_HEADER_SIZE:
                raise _ScanFailure(pos, f"batch declares length {size - LOG_OVERHEAD}, "
                                   f"below the minimum {_MIN_LENGTH}")
            if pos + size > end:
                raise _ScanFailure(pos, f"torn batch: it declares {size} bytes but only "
                                   f"{end - pos} remain in the file")
            if rel + size > len(buf):
                buf = os.pread(self.fd, max(_CHUNK, size), pos)
                buf_start, rel = pos, 0
            view = memoryview(buf)[rel : rel + size]
            if verify:
                try:
                    header = check_batch(view, 0, size)
                except InvalidRecordError as exc:
                    message = re.sub(r"batch at byte \d+ ", "batch ", str(exc))
                    raise _ScanFailure(pos, f"{exc.reason}: {message}") from None
            else:
                header = parse_header(view)
            yield pos, header, view
            pos += size


class _ScanFailure(Exception):
    def __init__(self, position: int, reason: str) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason


def _pwrite_all(fd: int, data: bytes | bytearray, pos: int) -> None:
    view = memoryview(data)
    written = 0
    while written < len(view):
        written += os.pwrite(fd, view[written:], pos + written)
