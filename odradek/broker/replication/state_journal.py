"""One append-only file per broker for the Raft hard states (term, vote, commit) of its
partitions, so that one fsync makes the votes and terms of many groups durable at once.

Before it, each group wrote its own state file (write, rename, fsync the directory:
1.5-2.6 ms here) before its vote or term could leave; creating 1,000 partitions queued
thousands of those behind each other, longer than an election timeout, and elections
churned. Now a group's hard state is appended here by the event loop (page cache only),
and its Ready's fsync job calls ``sync(ticket)``: the first such call fsyncs everything
appended so far, and the jobs of the other groups of the same host turn find their
records already durable (group commit). The commit index goes here too, now and then
and without an fsync of its own (a hint: a replica that restarts with an older one
learns the commit again from its leader), instead of rewriting the partition's state
file: that rewrite made a new file (write, rename) every second per active partition,
and file creation is what made creating many partitions slow. The per-partition state
file is still written where the log changes under it (truncation, snapshot install) and
now and then as a cache of what the log holds; at load the newer of the two wins
(``newer``).

A record: magic, payload length and the CRC-32C of the payload, then the payload: the
record's sequence number, the sequence number that was durable when it was written, term,
vote, commit and the group's key (its name and topic id, so that a record of a deleted
topic never applies to a new topic of the same name). At load, records are read up to the
first that does not check out. What follows is a torn write (never fsynced, so never
acknowledged) and is cut, unless a later intact record says that the bad one was already
durable when it was written: then fsynced state is damaged and the load refuses
(JournalCorruptError) rather than forget a vote. When the file has grown past
``compact_bytes`` and four times its live records (``compaction_due``), the host has it
rewritten with the newest record of each key (a new file, fsynced and renamed into
place) by a job of its own in the fsync workers, so that no group's fsync waits behind
the rewrite and a journal that only takes commit indexes (no sync) is compacted too."""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

import crc32c

from odradek.raft import HardState
from odradek.storage.cleaner import fsync_dir

log = logging.getLogger("odradek.raft")

JOURNAL_FILE = "raft-states.journal"
MAGIC = 0xA7
_HEAD = struct.Struct("<BHI")  # magic, payload length, crc32c(payload)
_BODY = struct.Struct("<QQQqq")  # seq, durable seq, term, vote (-1: none), commit
COMPACT_BYTES = 1 << 20


class JournalCorruptError(Exception):
    """A record that was already durable does not check out: the file cannot be trusted."""


def encode_record(seq: int, durable: int, key: str, hs: HardState) -> bytes:
    body = _BODY.pack(seq, durable, hs.term, -1 if hs.vote is None else hs.vote,
                      hs.commit) + key.encode()
    return _HEAD.pack(MAGIC, len(body), crc32c.crc32c(body)) + body


def decode_record(data: bytes | memoryview, pos: int
                  ) -> tuple[int, int, str, HardState, int] | None:
    """(seq, durable seq, key, hard state, next position) of the record at pos, or None
    if no intact record starts there."""
    if pos + _HEAD.size > len(data):
        return None
    magic, length, crc = _HEAD.unpack_from(data, pos)
    start = pos + _HEAD.size
    end = start + length
    if magic != MAGIC or length < _BODY.size or end > len(data):
        return None
    body = bytes(data[start:end])
    if crc32c.crc32c(body) != crc:
        return None
    seq, durable, term, vote, commit = _BODY.unpack_from(body)
    try:
        key = body[_BODY.size:].decode()
    except UnicodeDecodeError:
        return None
    return seq, durable, key, HardState(term, None if vote < 0 else vote, commit), end


def newer(a: HardState, b: HardState) -> bool:
    """Is a a later hard state of the same replica than b? Terms only grow, a vote is
    given once per term, and the commit index only grows (except where a cut log lowers
    it, and then the state's ``lost`` mark keeps the higher one)."""
    return (a.term, a.vote is not None, a.commit) > (b.term, b.vote is not None, b.commit)


class StateJournal:
    """The journal file of one broker. ``append`` runs on the event loop; ``sync`` in
    the fsync workers, several at once; the locks keep the two apart."""

    def __init__(self, directory: Path, compact_bytes: int = COMPACT_BYTES) -> None:
        self.path = Path(directory) / JOURNAL_FILE
        self.compact_bytes = compact_bytes
        self._lock = threading.Lock()  # the descriptor, sequence numbers and latest
        self._sync_lock = threading.Lock()  # one fsync or compaction at a time
        self.latest: dict[str, HardState] = {}
        self._seq = 0  # of the last record appended
        self._durable = 0  # the last record known to be on disk
        self._size = 0
        self._during_compaction: list[bytes] | None = None
        self.fsyncs = 0
        self._fd = self._load()

    # ------------------------------------------------------------------ load
    def _load(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.with_suffix(".tmp").unlink(missing_ok=True)  # an unfinished compaction
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        pos = 0
        while (record := decode_record(data, pos)) is not None:
            seq, _, key, hs, pos = record
            self.latest[key] = hs
            self._seq = seq
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if pos < len(data):
            self._check_tail(data, pos)
            log.warning("raft state journal %s: cut a torn tail of %d bytes at %d",
                        self.path, len(data) - pos, pos)
            os.ftruncate(fd, pos)
            os.fsync(fd)
        elif not data:
            fsync_dir(self.path.parent)  # the file's entry, before anything relies on it
        self._durable = self._seq
        self._size = pos
        os.lseek(fd, pos, os.SEEK_SET)
        return fd

    def _check_tail(self, data: bytes, bad: int) -> None:
        """The bytes from ``bad`` on are a torn write unless an intact record after them
        was written when the one at ``bad`` (sequence number seq + 1) was durable."""
        view = memoryview(data)
        first_lost = self._seq + 1
        pos = data.find(bytes([MAGIC]), bad + 1)
        while pos >= 0:
            record = decode_record(view, pos)
            if record is not None and record[1] >= first_lost:
                raise JournalCorruptError(
                    f"{self.path}: the record at byte {bad} is damaged, and record "
                    f"{record[0]} at byte {pos} says it was durable; refusing to start "
                    "with votes or terms that may be lost")
            pos = data.find(bytes([MAGIC]), pos + 1)

    # ------------------------------------------------------------------ use
    def get(self, key: str) -> HardState | None:
        return self.latest.get(key)

    def append(self, records: Sequence[tuple[str, HardState]]) -> int:
        """Writes the records (to the page cache); the ticket for ``sync``."""
        with self._lock:
            parts = []
            for key, hs in records:
                self._seq += 1
                parts.append(encode_record(self._seq, self._durable, key, hs))
                self.latest[key] = hs
            data = b"".join(parts)
            if self._during_compaction is not None:
                self._during_compaction.append(data)
            else:
                self._write(self._fd, data)
            return self._seq

    def sync(self, ticket: int) -> None:
        """Returns once the records up to ``ticket`` are durable."""
        with self._sync_lock:
            if self._durable >= ticket:
                return  # another group's job of the same turn fsynced them
            with self._lock:
                fd, upto = self._fd, self._seq
            os.fsync(fd)
            self.fsyncs += 1
            with self._lock:
                self._durable = max(self._durable, upto)

    @property
    def compaction_due(self) -> bool:
        with self._lock:
            return self._size > max(self.compact_bytes, 4 * len(self.latest) * 64)

    def compact_if_due(self) -> None:
        """Rewrites the file if it is due (a worker thread: it fsyncs)."""
        with self._sync_lock:
            if self.compaction_due:
                self._compact()

    def forget(self, key: str) -> None:
        """The replica is deleted: the next compaction drops its record."""
        with self._lock:
            self.latest.pop(key, None)

    def _compact(self) -> None:
        """Rewrites the file with the newest record of each key (under the sync lock)."""
        with self._lock:
            latest = list(self.latest.items())
            base = self._seq
            self._seq += len(latest)
            top = self._seq
            self._during_compaction = []
        tmp = self.path.with_suffix(".tmp")
        try:
            data = b"".join(encode_record(base + i, top, key, hs)
                            for i, (key, hs) in enumerate(latest, 1))
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
            fd = os.open(self.path, os.O_RDWR)
        except BaseException:
            with self._lock:  # keep the old file: what arrived meanwhile goes to it
                self._write_pending(self._fd)
            raise
        with self._lock:
            old, self._fd = self._fd, fd
            os.lseek(fd, len(data), os.SEEK_SET)
            self._size = len(data)
            self._durable = max(self._durable, top)
            self._write_pending(fd)  # not yet durable: their own sync fsyncs the new file
        os.close(old)

    def _write_pending(self, fd: int) -> None:
        pending, self._during_compaction = self._during_compaction or [], None
        for data in pending:
            self._write(fd, data)

    def _write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        self._size += len(data)

    def close(self) -> None:
        with self._sync_lock, self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
