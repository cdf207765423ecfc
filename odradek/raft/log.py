"""The core's view of the log: stable storage plus entries not yet persisted (unstable)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from odradek.raft.storage import LogStorage
from odradek.raft.types import Entry, Snapshot


class RaftLog:
    """Entries below ``unstable_offset`` are read from storage (they are durable); entries
    at or above it are in ``unstable`` (handed to the host in Ready, not yet persisted).
    Invariant: when ``unstable`` is empty, ``unstable_offset == last_index() + 1``."""

    __slots__ = (
        "storage",
        "unstable",
        "_ustarts",
        "unstable_offset",
        "pending_snapshot",
        "committed",
        "applied",
    )

    def __init__(self, storage: LogStorage, applied: int | None = None) -> None:
        self.storage = storage
        self.unstable: list[Entry] = []
        self._ustarts: list[int] = []
        self.unstable_offset = storage.last_index() + 1
        self.pending_snapshot: Snapshot | None = None
        snap_index = storage.snapshot_meta().index
        self.committed = max(storage.initial_state().commit, snap_index)
        self.applied = snap_index if applied is None else max(applied, snap_index)
        if self.committed > storage.last_index():
            raise ValueError(
                f"durable commit {self.committed} beyond the log end {storage.last_index()}"
            )

    # -- bounds and terms --------------------------------------------------------------
    def first_index(self) -> int:
        if self.pending_snapshot is not None:
            return self.pending_snapshot.meta.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        if self.unstable:
            return self.unstable[-1].last
        if self.pending_snapshot is not None:
            return self.pending_snapshot.meta.index
        return self.unstable_offset - 1

    def last_term(self) -> int:
        t = self.term(self.last_index())
        return 0 if t is None else t

    def stable_last(self) -> int:
        """The last offset known durable."""
        return self.unstable_offset - 1

    def term(self, offset: int) -> int | None:
        """Term of the entry covering ``offset``; None if compacted or beyond the end."""
        if offset >= self.unstable_offset:
            e = self._unstable_at(offset)
            if e is not None:
                return e.term
            snap = self.pending_snapshot
            if snap is not None and offset == snap.meta.index:
                return snap.meta.term
            return None
        snap = self.pending_snapshot
        if snap is not None:
            return snap.meta.term if offset == snap.meta.index else None
        return self.storage.term(offset)

    def entry_at(self, offset: int) -> Entry | None:
        if offset >= self.unstable_offset:
            return self._unstable_at(offset)
        if self.pending_snapshot is not None:
            return None
        return self.storage.entry_at(offset)

    def _unstable_at(self, offset: int) -> Entry | None:
        if not self.unstable or offset > self.unstable[-1].last:
            return None
        p = bisect.bisect_right(self._ustarts, offset) - 1
        return self.unstable[p] if p >= 0 else None

    def match_term(self, offset: int, term: int) -> bool:
        t = self.term(offset)
        return t is not None and t == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Is a log ending at (last_index, last_term) at least as up to date as ours?"""
        lt = self.last_term()
        return last_term > lt or (last_term == lt and last_index >= self.last_index())

    def floor_boundary(self, offset: int) -> int:
        """The largest last offset of an entry that is <= ``offset`` (offsets at or below
        the snapshot index are returned as they are)."""
        if offset < self.first_index():
            return offset
        e = self.entry_at(offset)
        if e is None:
            return min(offset, self.last_index())
        return offset if e.last == offset else e.index - 1

    def find_conflict_by_term(self, offset: int, term: int) -> int:
        """The largest offset <= ``offset`` whose term is <= ``term`` (or the first offset
        below which nothing is known)."""
        offset = min(offset, self.last_index())
        first = self.first_index()
        while offset >= first:
            e = self.entry_at(offset)
            if e is None or e.term <= term:
                return offset
            offset = e.index - 1
        return offset

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """Position in ``entries`` of the first one that is new or conflicts, or len."""
        last = self.last_index()
        for i, e in enumerate(entries):
            if e.index > last:
                return i
            t = self.term(e.index)
            if t != e.term:
                return i
        return len(entries)

    # -- reading entries ---------------------------------------------------------------
    def entries_from(self, lo: int, max_bytes: int, hi: int | None = None) -> list[Entry] | None:
        """Entries from base offset ``lo`` (below ``hi``), at most ``max_bytes`` but at least
        one; None if ``lo`` is compacted."""
        if hi is None:
            hi = self.last_index() + 1
        if lo >= hi:
            return []
        if lo < self.first_index():
            return None
        out: list[Entry] = []
        if lo < self.unstable_offset:
            out = self.storage.entries(lo, min(hi, self.unstable_offset), max_bytes)
            if not out:
                return None
            if out[-1].last + 1 < min(hi, self.unstable_offset):
                return out
            lo = out[-1].last + 1
        if lo >= hi or not self.unstable:
            return out
        p = bisect.bisect_left(self._ustarts, lo)
        size = sum(e.size() for e in out)
        ents = self.unstable
        while p < len(ents) and ents[p].index < hi:
            e = ents[p]
            size += e.size()
            if out and size > max_bytes:
                break
            out.append(e)
            p += 1
        return out

    def next_committed(self, max_bytes: int) -> list[Entry]:
        if self.pending_snapshot is not None or self.committed <= self.applied:
            return []
        ents = self.entries_from(self.applied + 1, max_bytes, self.committed + 1)
        return ents or []

    # -- mutation ----------------------------------------------------------------------
    def append(self, entries: Sequence[Entry]) -> None:
        """Append (first entry must follow the last) or replace a conflicting suffix."""
        if not entries:
            return
        first = entries[0].index
        if first <= self.committed:
            raise AssertionError(f"truncating committed offset {first} <= {self.committed}")
        if first > self.last_index() + 1:
            raise AssertionError(f"append at {first} leaves a gap after {self.last_index()}")
        if first <= self.unstable_offset:
            self.unstable = list(entries)
            self._ustarts = [e.index for e in entries]
            self.unstable_offset = first
        else:
            cut = bisect.bisect_left(self._ustarts, first)
            del self.unstable[cut:]
            del self._ustarts[cut:]
            self.unstable.extend(entries)
            self._ustarts.extend(e.index for e in entries)

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise AssertionError(f"commit {index} beyond the log end {self.last_index()}")
            self.committed = index

    def stable_to(self, index: int, term: int) -> bool:
        """Entries up to ``index`` (with that term) are durable. False if that entry is not
        (or no longer) in the unstable part."""
        if index < self.unstable_offset:
            return self.term(index) == term
        e = self._unstable_at(index)
        if e is None or e.term != term or e.last != index:
            return False  # replaced meanwhile; the replacement is persisted by a later Ready
        cut = bisect.bisect_right(self._ustarts, index)
        del self.unstable[:cut]
        del self._ustarts[:cut]
        self.unstable_offset = index + 1
        return True

    def stable_snap_to(self, index: int) -> None:
        snap = self.pending_snapshot
        if snap is not None and snap.meta.index == index:
            self.pending_snapshot = None

    def restore(self, snapshot: Snapshot) -> None:
        self.unstable = []
        self._ustarts = []
        self.unstable_offset = snapshot.meta.index + 1
        self.pending_snapshot = snapshot
        self.committed = snapshot.meta.index

    def applied_to(self, index: int) -> None:
        if index > self.applied:
            self.applied = index
