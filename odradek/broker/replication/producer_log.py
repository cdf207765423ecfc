"""Keeps a partition's producer state in step with its log, across restarts.

The state is rebuilt from the log, and a snapshot file bounds the scan: it is written when
the log rolls a segment and at clean shutdown, holds the state as of an offset, and at
open only the batches from that offset on are read. A snapshot that is not trustworthy is
ignored and the whole log is scanned: one past the log end (the tail it described was lost
in a crash), or one above an offset the log is truncated to (it is deleted before the
truncation, write-ahead, so that a later append cannot make it describe other batches)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from odradek.broker import clock as broker_clock
from odradek.broker.replication.producer_state import DEFAULT_EXPIRATION_MS, ProducerStateTable
from odradek.records import iter_batches
from odradek.storage import PartitionLog
from odradek.storage.cleaner import fsync_dir

log = logging.getLogger("odradek.broker")

SNAPSHOT_FILE = "producer-state.json"
SCAN_CHUNK = 4 << 20
EXPIRE_EVERY_MS = 60_000


class ProducerStateStore:
    def __init__(self, plog: PartitionLog, expiration_ms: int = DEFAULT_EXPIRATION_MS,
                 clock: Callable[[], int] | None = None) -> None:
        self.log = plog
        self.path = Path(plog.directory) / SNAPSHOT_FILE
        self.expiration_ms = expiration_ms
        self._clock = clock or broker_clock.time_ms
        self._snapshot_offset: int | None = None
        self._active_base = plog.active_segment_base
        self._last_expire = self._clock()
        self.table = self._load()
        self.scan(self.log.log_end_offset)
        self.expire()

    # ----------------------------------------------------------------- reading the log
    def _load(self) -> ProducerStateTable:
        try:
            table = ProducerStateTable.decode(self.path.read_bytes())
        except FileNotFoundError:
            return self._empty()
        except ValueError as exc:
            log.warning("%s: ignoring producer state snapshot: %s", self.path, exc)
            return self._empty()
        if table.end_offset > self.log.log_end_offset:
            log.info("%s: producer state snapshot at %d is past the log end %d; rescanning",
                     self.path, table.end_offset, self.log.log_end_offset)
            return self._empty()
        self._snapshot_offset = table.end_offset
        return table

    def _empty(self) -> ProducerStateTable:
        table = ProducerStateTable()
        table.end_offset = self.log.log_start_offset
        return table

    def scan(self, end: int) -> None:
        """Records the batches of the log from the table's end to `end`."""
        table = self.table
        table.skip_to(self.log.log_start_offset)
        while table.end_offset < end:
            data = self.log.read(table.end_offset, SCAN_CHUNK, max_offset=end).data
            if not data:
                break
            before = table.end_offset
            self.on_append(data, snapshot=False)
            if table.end_offset == before:
                break

    def on_append(self, data: bytes | bytearray | memoryview, snapshot: bool = True) -> None:
        """Batches (with their offsets) entered the log."""
        table = self.table
        # Expiry counts from when this replica stored a producer's last batch (after a
        # scan: from the scan), not from the batch's timestamp, which a producer sets: a
        # backfill with old timestamps must not lose its state at once.
        now = self._clock()
        for _pos, h in iter_batches(data):
            if h.is_control:
                table.skip_to(h.next_offset)
            else:
                table.record(h.producer_id, h.producer_epoch, h.base_sequence, h.base_offset,
                             h.last_offset, now)
        if snapshot:
            self._after_append()

    def _after_append(self) -> None:
        base = self.log.active_segment_base
        if base != self._active_base:
            self._active_base = base
            self.save()  # a segment rolled: the next open scans from here
        now = self._clock()
        if now - self._last_expire >= min(EXPIRE_EVERY_MS, self.expiration_ms):
            self.expire()

    def expire(self) -> None:
        self._last_expire = self._clock()
        gone = self.table.expire(self._last_expire, self.expiration_ms)
        if gone:
            log.debug("%s: expired %d idle producers", self.log.directory, gone)

    # ------------------------------------------------------------- changes to the log
    def truncate(self, offset: int) -> None:
        """Call before the log is truncated to `offset` (write-ahead)."""
        if self._snapshot_offset is not None and self._snapshot_offset > offset:
            self._delete_snapshot()
        if self.table.end_offset <= offset:
            return
        table = self._load() if self._snapshot_offset is not None else None
        if table is None or table.end_offset > offset:
            table = self._empty()
        self.table = table
        self.scan(offset)

    def reset(self, offset: int) -> None:
        """The log now starts (empty) at offset: nothing of its history is left."""
        self._delete_snapshot()
        self.table.clear(offset)

    # -------------------------------------------------------------------- snapshots
    def save(self) -> None:
        data = self.table.encode()
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, self.path)
        self._snapshot_offset = self.table.end_offset

    def _delete_snapshot(self) -> None:
        if self._snapshot_offset is None and not self.path.exists():
            return
        self._snapshot_offset = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.path.parent)
