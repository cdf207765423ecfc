"""The quiesced Raft groups of one host, filed by the broker that leads each.

A tick must not cost a pass over every group of an idle broker: with the quiet groups
filed by leader, a tick asks once per leader's broker whether it is alive and wakes that
broker's groups together when it is not; the groups still awake are kept apart, in the
order they woke, so that a tick walks only those (and a seed replays the same order).

A quiet group's leader cannot change while it stays quiet: every message that could
change it, and every local leadership event, wakes the group first (RaftHost.schedule).
"""

from __future__ import annotations

from collections.abc import Iterator


class QuietGroups:
    def __init__(self) -> None:
        self._leader_of: dict[str, int | None] = {}
        self._by_leader: dict[int | None, dict[str, None]] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._leader_of

    def __iter__(self) -> Iterator[str]:
        return iter(self._leader_of)

    def __len__(self) -> int:
        return len(self._leader_of)

    def add(self, name: str, leader: int | None) -> None:
        self.discard(name)
        self._leader_of[name] = leader
        self._by_leader.setdefault(leader, {})[name] = None

    def discard(self, name: str) -> bool:
        """Whether the group was quiet."""
        if name not in self._leader_of:
            return False
        leader = self._leader_of.pop(name)
        led = self._by_leader[leader]
        del led[name]
        if not led:
            del self._by_leader[leader]
        return True

    def leaders(self) -> list[int | None]:
        return list(self._by_leader)

    def wake_led_by(self, leader: int | None) -> list[str]:
        """Removes and returns the quiet groups that leader leads."""
        names = list(self._by_leader.pop(leader, ()))
        for name in names:
            del self._leader_of[name]
        return names
