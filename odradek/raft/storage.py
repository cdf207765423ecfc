"""The storage protocol the core reads, and an in-memory implementation.

The core only ever READS storage (``LogStorage``); it hands writes to the host in Ready.
``PersistentLogStorage`` adds the write side used by hosts (the broker, the simulator) so
that the simulator can run over the real partition log through the same protocol.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Protocol

from odradek.raft.types import (
    NO_INDEX,
    ConfigState,
    Entry,
    EntryKind,
    HardState,
    Snapshot,
    SnapshotMeta,
)


class LogStorage(Protocol):
    def initial_state(self) -> HardState:
        """The last durable HardState."""
        ...

    def snapshot_meta(self) -> SnapshotMeta:
        """Metadata of the latest snapshot (index -1 and the bootstrap config if none)."""
        ...

    def snapshot(self) -> Snapshot:
        """The latest snapshot with its data, to send to a follower that needs it."""
        ...

    def first_index(self) -> int:
        """The first offset present (snapshot_meta().index + 1)."""
        ...

    def last_index(self) -> int:
        """The last offset present (snapshot_meta().index when there are no entries)."""
        ...

    def term(self, offset: int) -> int | None:
        """Term of the entry covering ``offset``; the snapshot term for the snapshot index;
        None when the offset is compacted or beyond the end."""
        ...

    def entry_at(self, offset: int) -> Entry | None:
        """The entry covering ``offset``, or None when absent."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries starting with the one whose base offset is ``lo``, none starting at or
        after ``hi``, totalling at most ``max_bytes`` but always at least one if any."""
        ...

    def config_entries(self) -> list[Entry]:
        """The CONFIG entries after the snapshot, in order (the host can index them)."""
        ...


class PersistentLogStorage(LogStorage, Protocol):
    def append(self, entries: Sequence[Entry]) -> None:
        """Durably store ``entries``, dropping any stored entry at or after entries[0]."""
        ...

    def set_hard_state(self, hs: HardState) -> None: ...

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the whole log by ``snapshot`` (no entries remain)."""
        ...

    def compact(self, index: int, data: bytes) -> None:
        """Snapshot at ``index`` (an entry's last offset, already applied) with the state
        machine's ``data``, and drop the entries up to it."""
        ...


class MemoryStorage:
    """PersistentLogStorage in memory. ``voters`` bootstraps a new group; leave it empty for
    a node that joins an existing group (it learns the config from the leader)."""

    def __init__(self, voters: Sequence[int] = ()) -> None:
        self._hs = HardState()
        self._snap = Snapshot(SnapshotMeta(NO_INDEX, 0, ConfigState(frozenset(voters))))
        self._entries: list[Entry] = []
        self._starts: list[int] = []

    # -- LogStorage ------------------------------------------------------------------
    def initial_state(self) -> HardState:
        return self._hs

    def snapshot_meta(self) -> SnapshotMeta:
        return self._snap.meta

    def snapshot(self) -> Snapshot:
        return self._snap

    def first_index(self) -> int:
        return self._snap.meta.index + 1

    def last_index(self) -> int:
        return self._entries[-1].last if self._entries else self._snap.meta.index

    def _pos(self, offset: int) -> int:
        """Position of the entry covering offset, or -1."""
        if not self._entries or offset < self._starts[0] or offset > self._entries[-1].last:
            return -1
        return bisect.bisect_right(self._starts, offset) - 1

    def term(self, offset: int) -> int | None:
        if offset == self._snap.meta.index:
            return self._snap.meta.term
        p = self._pos(offset)
        return self._entries[p].term if p >= 0 else None

    def entry_at(self, offset: int) -> Entry | None:
        p = self._pos(offset)
        return self._entries[p] if p >= 0 else None

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        p = self._pos(lo)
        if p < 0:
            return []
        if self._starts[p] != lo:
            raise ValueError(f"offset {lo} is not the base offset of an entry")
        out: list[Entry] = []
        size = 0
        ents = self._entries
        while p < len(ents) and ents[p].index < hi:
            e = ents[p]
            size += e.size()
            if out and size > max_bytes:
                break
            out.append(e)
            p += 1
        return out

    def config_entries(self) -> list[Entry]:
        return [e for e in self._entries if e.kind == EntryKind.CONFIG]

    # -- writes ------------------------------------------------------------------------
    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        if first <= self._snap.meta.index:
            raise ValueError(f"append at {first} below the snapshot {self._snap.meta.index}")
        if first > self.last_index() + 1:
            raise ValueError(f"append at {first} leaves a gap after {self.last_index()}")
        cut = bisect.bisect_left(self._starts, first)
        if cut < len(self._entries) and self._starts[cut] != first:
            raise ValueError(f"append at {first} splits an entry")
        if cut > 0 and self._entries[cut - 1].last != first - 1:
            raise ValueError(f"append at {first} splits an entry")
        del self._entries[cut:]
        del self._starts[cut:]
        self._entries.extend(entries)
        self._starts.extend(e.index for e in entries)

    def set_hard_state(self, hs: HardState) -> None:
        self._hs = hs

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        self._snap = snapshot
        self._entries = []
        self._starts = []

    def config_at(self, index: int) -> ConfigState:
        """The configuration in effect at ``index`` (the latest CONFIG entry at or below it)."""
        cfg = self._snap.meta.config
        for e in self._entries:
            if e.index > index:
                break
            if e.kind == EntryKind.CONFIG:
                cfg = ConfigState.decode(e.data)
        return cfg

    def compact(self, index: int, data: bytes) -> None:
        if index <= self._snap.meta.index:
            return
        e = self.entry_at(index)
        if e is None or e.last != index:
            raise ValueError(f"compact at {index}: not the last offset of a stored entry")
        meta = SnapshotMeta(index, e.term, self.config_at(index))
        cut = bisect.bisect_right(self._starts, index)
        del self._entries[:cut]
        del self._starts[:cut]
        self._snap = Snapshot(meta, data)
