"""A tiny synchronous network for unit tests of the Raft core: readies are persisted at
once, messages are delivered in order, and links can be cut or filtered."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from odradek.raft import (
    Entry,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    RaftConfig,
    RaftNode,
    Role,
    Snapshot,
)


class Net:
    def __init__(
        self,
        ids: Iterable[int],
        storages: dict[int, MemoryStorage] | None = None,
        seed: int = 0,
        **cfg: object,
    ) -> None:
        self.ids = list(ids)
        self.cfg = cfg
        self.seed = seed
        self.storages: dict[int, MemoryStorage] = {}
        self.nodes: dict[int, RaftNode] = {}
        self.blocked: set[tuple[int, int]] = set()
        self.filter: Callable[[Message], bool] | None = None
        self.sent: list[Message] = []
        self.applied: dict[int, list[Entry]] = {}
        self.snapshots: dict[int, list[Snapshot]] = {}
        for i in self.ids:
            st = (storages or {}).get(i) or MemoryStorage(self.ids)
            self.add(i, st)

    def add(self, i: int, storage: MemoryStorage) -> RaftNode:
        self.storages[i] = storage
        cfg = RaftConfig(i, **self.cfg)  # type: ignore[arg-type]
        node = RaftNode(cfg, storage, random.Random(self.seed * 100 + i))
        self.nodes[i] = node
        self.applied.setdefault(i, [])
        if i not in self.ids:
            self.ids.append(i)
        return node

    def restart(self, i: int) -> RaftNode:
        return self.add(i, self.storages[i])

    def isolate(self, i: int) -> None:
        for j in self.ids:
            if j != i:
                self.blocked.add((i, j))
                self.blocked.add((j, i))

    def heal(self) -> None:
        self.blocked.clear()
        self.filter = None

    def pump(self, i: int) -> list[Message]:
        """Persist and apply node i's ready; return its messages."""
        node = self.nodes[i]
        out: list[Message] = []
        while node.has_ready():
            rd = node.ready()
            st = self.storages[i]
            if rd.snapshot_to_apply is not None:
                st.apply_snapshot(rd.snapshot_to_apply)
                self.snapshots.setdefault(i, []).append(rd.snapshot_to_apply)
            st.append(rd.entries_to_persist)
            if rd.hard_state is not None:
                st.set_hard_state(rd.hard_state)
            out.extend(rd.messages)
            self.applied[i].extend(rd.committed_entries)
            node.advance(rd)
        return out

    def deliver(self, max_rounds: int = 1000) -> None:
        """Run until no node has anything more to send."""
        for _ in range(max_rounds):
            msgs: list[Message] = []
            for i in self.ids:
                if i in self.nodes:
                    msgs.extend(self.pump(i))
            if not msgs:
                return
            for m in msgs:
                self.sent.append(m)
                if (m.from_id, m.to_id) in self.blocked:
                    continue
                if self.filter is not None and not self.filter(m):
                    continue
                if m.to_id in self.nodes:
                    self.nodes[m.to_id].step(m)
        raise AssertionError("network did not quiesce")

    def tick(self, i: int, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[i].tick()
            self.deliver()

    def tick_all(self, n: int = 1) -> None:
        for _ in range(n):
            for i in self.ids:
                self.nodes[i].tick()
            self.deliver()

    def campaign(self, i: int) -> None:
        """Tick node i alone until its election timer fires (others do not tick)."""
        node = self.nodes[i]
        for _ in range(node.randomized_timeout + 1):
            if node.role != Role.FOLLOWER:
                break
            node.tick()
        self.deliver()

    def leaders(self) -> list[int]:
        return [i for i, n in self.nodes.items() if n.role == Role.LEADER]

    def count(self, mtype: MessageType, to: int | None = None) -> int:
        return sum(1 for m in self.sent if m.type == mtype and (to is None or m.to_id == to))


def storage_with(voters: list[int], entries: list[Entry], term: int) -> MemoryStorage:
    st = MemoryStorage(voters)
    st.append(entries)
    st.set_hard_state(HardState(term, None, -1))
    return st


def log_of(net: Net, i: int) -> list[tuple[int, int, int]]:
    node = net.nodes[i]
    ents = node.log.entries_from(node.log.first_index(), 1 << 30) or []
    return [(e.index, e.count, e.term) for e in ents]
