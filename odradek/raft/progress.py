"""The leader's view of each member: match/next, probe/replicate/snapshot, inflight window."""

from __future__ import annotations

import enum
from collections import deque

from odradek.raft.types import NO_INDEX


class ProgressState(enum.IntEnum):
    PROBE = 0
    """Next is a guess: send one append, wait for its answer (or a heartbeat answer)."""
    REPLICATE = 1
    """Next is known: stream appends optimistically, up to the inflight window."""
    SNAPSHOT = 2
    """A snapshot is on its way; send nothing until it is acknowledged or times out."""


class Inflights:
    """Appends sent but not acknowledged: a window bounded in messages and bytes."""

    __slots__ = ("_q", "_bytes", "max_count", "max_bytes")

    def __init__(self, max_count: int, max_bytes: int) -> None:
        self._q: deque[tuple[int, int]] = deque()
        self._bytes = 0
        self.max_count = max_count
        self.max_bytes = max_bytes

    def __len__(self) -> int:
        return len(self._q)

    def add(self, last: int, size: int) -> None:
        self._q.append((last, size))
        self._bytes += size

    def full(self) -> bool:
        return len(self._q) >= self.max_count or (
            self.max_bytes > 0 and self._bytes >= self.max_bytes
        )

    def free_le(self, index: int) -> None:
        q = self._q
        while q and q[0][0] <= index:
            self._bytes -= q.popleft()[1]

    def free_first(self) -> None:
        if self._q:
            self._bytes -= self._q.popleft()[1]

    def reset(self) -> None:
        self._q.clear()
        self._bytes = 0


class Progress:
    __slots__ = (
        "match",
        "next",
        "state",
        "probe_sent",
        "pending_snapshot",
        "snapshot_stale",
        "recent_active",
        "inflights",
    )

    def __init__(self, next_index: int, max_inflight: int, max_inflight_bytes: int) -> None:
        self.match = NO_INDEX
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = NO_INDEX
        self.snapshot_stale = False
        self.recent_active = False
        self.inflights = Inflights(max_inflight, max_inflight_bytes)

    def __repr__(self) -> str:
        return (
            f"Progress(match={self.match}, next={self.next}, state={self.state.name}, "
            f"paused={self.is_paused()}, inflight={len(self.inflights)})"
        )

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = NO_INDEX
        self.inflights.reset()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.pending_snapshot = NO_INDEX
        self.inflights.reset()

    def become_snapshot(self, index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.pending_snapshot = index
        self.snapshot_stale = False
        self.probe_sent = False
        self.inflights.reset()

    def maybe_update(self, index: int) -> bool:
        """An append up to ``index`` was acknowledged. True if match moved forward."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        if self.next < index + 1:
            self.next = index + 1
        return updated

    def maybe_decr_to(self, rejected: int, new_next: int) -> bool:
        """An append with prev_index ``rejected`` was refused; ``new_next`` is the leader's
        guess from the follower's hint (a base offset below ``rejected + 1``). False when
        the refusal is stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(new_next, self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True
