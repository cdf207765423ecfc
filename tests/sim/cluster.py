"""Deterministic simulation of one Raft group: real RaftNode cores, a simulated network,
simulated disks and a simulated clock, all driven by one seeded random generator.

Every fault is a function of the seed, so a failing seed replays exactly with
``python -m tests.sim.run --seed S --steps N --nodes K``.
"""

from __future__ import annotations

import heapq
import json
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from odradek.raft import (
    ConfigChangeType,
    ConfigState,
    Entry,
    EntryKind,
    MemoryStorage,
    Message,
    MessageType,
    NotLeader,
    PersistentLogStorage,
    ProposalDropped,
    RaftConfig,
    RaftNode,
    Ready,
    Role,
    Snapshot,
)

StorageFactory = Callable[[int, list[int]], PersistentLogStorage]


class SimDisk(Protocol):
    """Disks whose contents a crash can damage (tests/sim/real_storage.py): the cluster
    opens each node's storage through it, asks it for client batches, and on a crash
    hands it the node's unfinished write and takes back the reopened storage."""

    stats: dict[str, int]
    now_ms: Callable[[], int]

    def open(self, node_id: int, voters: list[int]) -> PersistentLogStorage: ...

    def proposal(self, seq: int, count: int) -> bytes: ...

    def crash(self, node_id: int, pending: Ready | None,
              rng: random.Random) -> PersistentLogStorage: ...

    def close(self) -> None: ...


class Violation(AssertionError):
    """A safety (or final liveness) property failed."""


def replay_command(seed: int, steps: int, nodes: int, real_storage: bool = False) -> str:
    cmd = f"python -m tests.sim.run --seed {seed} --steps {steps} --nodes {nodes}"
    return cmd + " --real-storage" if real_storage else cmd


def batch_payload(data: bytes) -> bytes:
    """A stored RecordBatch without the fields the log rewrites (baseOffset and
    partitionLeaderEpoch), to compare with what the client proposed."""
    return data[8:12] + data[16:]


@dataclass
class SimParams:
    nodes: int
    drop: float
    dup: float
    max_delay: int
    long_delay: float
    disk_latency: int
    fault_rate: float
    client_rate: float
    membership: bool
    transfer: bool
    compaction: bool
    pre_vote: bool
    check_quorum: bool
    max_inflight: int
    max_batch_bytes: int
    heartbeat_ticks: int
    election_ticks: int = 10

    @classmethod
    def from_seed(cls, rng: random.Random, nodes: int) -> SimParams:
        return cls(
            nodes=nodes,
            drop=rng.choice([0.0, 0.01, 0.05, 0.15]),
            dup=rng.choice([0.0, 0.02, 0.1]),
            max_delay=rng.choice([1, 2, 3, 5]),
            long_delay=rng.choice([0.0, 0.02]),
            disk_latency=rng.choice([0, 1, 2, 3]),
            fault_rate=rng.choice([0.02, 0.05, 0.1]),
            client_rate=rng.choice([0.2, 0.5, 0.9]),
            membership=rng.random() < 0.3,
            transfer=rng.random() < 0.3,
            compaction=rng.random() < 0.3,
            pre_vote=rng.random() < 0.85,
            check_quorum=rng.random() < 0.85,
            max_inflight=rng.choice([1, 4, 64]),
            max_batch_bytes=rng.choice([256, 4096, 1 << 20]),
            heartbeat_ticks=rng.choice([1, 1, 2]),
        )


class SimNetwork:
    """Delivers messages after a random delay; drops, duplicates, reorders, partitions."""

    def __init__(self, rng: random.Random, params: SimParams) -> None:
        self.rng = rng
        self.p = params
        self._heap: list[tuple[int, int, Message]] = []
        self._seq = 0
        self.blocked: set[tuple[int, int]] = set()
        self.sent = 0
        # Broken-connection signals: (due, seq, receiver, the node whose link broke).
        self._signals: list[tuple[int, int, int, int]] = []

    def send(self, m: Message, now: int) -> None:
        self.sent += 1
        if (m.from_id, m.to_id) in self.blocked:
            return
        rng = self.rng
        if self.p.drop and rng.random() < self.p.drop:
            return
        copies = 2 if self.p.dup and rng.random() < self.p.dup else 1
        for _ in range(copies):
            delay = rng.randint(1, self.p.max_delay)
            if self.p.long_delay and rng.random() < self.p.long_delay:
                delay += rng.randint(5, 30)
            self._seq += 1
            heapq.heappush(self._heap, (now + delay, self._seq, m))

    def due(self, now: int) -> list[Message]:
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            m = heapq.heappop(heap)[2]
            if (m.from_id, m.to_id) not in self.blocked:
                out.append(m)
        return out

    def signal_lost(self, about: int, to: int, now: int) -> None:
        """``to`` sees its connection with ``about`` break (a reset or a refusal), soon;
        a partition between them keeps the reset from arriving, as a firewall dropping
        packets would."""
        if (about, to) in self.blocked:
            return
        self._seq += 1
        heapq.heappush(self._signals, (now + self.rng.randint(1, self.p.max_delay),
                                       self._seq, to, about))

    def due_signals(self, now: int) -> list[tuple[int, int]]:
        out = []
        heap = self._signals
        while heap and heap[0][0] <= now:
            _, _, to, about = heapq.heappop(heap)
            out.append((to, about))
        return out

    def hold(self, m: Message, until: int) -> None:
        """Re-deliver ``m`` at ``until`` (its receiver is paused)."""
        self._seq += 1
        heapq.heappush(self._heap, (until, self._seq, m))

    def __len__(self) -> int:
        return len(self._heap)


@dataclass
class SimNode:
    id: int
    storage: PersistentLogStorage
    raft: RaftNode | None = None
    pending: Ready | None = None
    done_at: int = 0
    sm: dict[int, tuple[int, str]] = field(default_factory=dict)
    applied: int = -1
    live_commit: int = -1
    durable_commit: int = -1
    checked: int = -1
    incarnation: int = 0
    paused_until: int = 0


def encode_sm(applied: int, sm: dict[int, tuple[int, str]]) -> bytes:
    items = sorted([k, t, d] for k, (t, d) in sm.items())
    return json.dumps({"applied": applied, "sm": items}).encode()


def decode_sm(data: bytes) -> dict[int, tuple[int, str]]:
    if not data:
        return {}
    return {k: (t, d) for k, t, d in json.loads(data)["sm"]}


class SimCluster:
    def __init__(
        self,
        seed: int,
        nodes: int = 3,
        steps: int = 1000,
        verbose: bool = False,
        storage_factory: StorageFactory | None = None,
        disk: SimDisk | None = None,
    ) -> None:
        self.seed = seed
        self.steps = steps
        self.verbose = verbose
        self.rng = random.Random(seed)
        self.p = SimParams.from_seed(self.rng, nodes)
        self.disk = disk
        if disk is not None:
            # partition logs have no Raft snapshots (PartitionRaftStorage.compact refuses)
            self.p.compaction = False
            disk.now_ms = lambda: 1_700_000_000_000 + self.now * 10
            storage_factory = disk.open
        self.net = SimNetwork(self.rng, self.p)
        self.now = 0
        self.trace: deque[str] = deque(maxlen=400)
        factory = storage_factory or (lambda _id, voters: MemoryStorage(voters))
        voters = list(range(1, nodes + 1))
        ids = voters + ([nodes + 1] if self.p.membership else [])
        self.nodes: dict[int, SimNode] = {}
        for i in ids:
            # a spare node starts with no configuration: it joins when added
            self.nodes[i] = SimNode(i, factory(i, voters if i in voters else []))
            self._start(self.nodes[i])
        self.leaders_by_term: dict[int, int] = {}
        self.chain: dict[int, tuple[int, int, bytes, int]] = {}
        self.chain_end = -1
        self.pending_props: dict[tuple[int, int], tuple[int, bytes, int]] = {}
        # (voter, term) -> the candidate it voted for, as its messages showed, across its
        # crashes: a vote that a crash loses (not durable before it left) shows as two.
        self.votes: dict[tuple[int, int], int] = {}
        self.acked: list[tuple[int, int, bytes]] = []
        self.client_seq = 0
        self.client_target = 1
        self.stats = {"proposed": 0, "acked": 0, "elections": 0, "snapshots": 0, "faults": 0}
        self.stats.update(truncations=0, transfers=0, config_changes=0, compactions=0,
                          leader_lost=0)
        self.max_voters = len(ids)

    # ------------------------------------------------------------------ helpers
    def _log(self, s: str) -> None:
        line = f"[t={self.now}] {s}"
        self.trace.append(line)
        if self.verbose:
            print(line)

    def fail(self, what: str) -> None:
        raise Violation(
            f"seed {self.seed}: {what}\n  replay: "
            + replay_command(self.seed, self.steps, self.p.nodes, self.disk is not None)
        )

    def _start(self, n: SimNode) -> None:
        n.incarnation += 1
        cfg = RaftConfig(
            id=n.id,
            election_ticks=self.p.election_ticks,
            heartbeat_ticks=self.p.heartbeat_ticks,
            pre_vote=self.p.pre_vote,
            check_quorum=self.p.check_quorum,
            max_inflight=self.p.max_inflight,
            max_batch_bytes=self.p.max_batch_bytes,
        )
        n.raft = RaftNode(cfg, n.storage, random.Random(f"{self.seed}/{n.id}/{n.incarnation}"))
        snap = n.storage.snapshot()
        n.sm = decode_sm(snap.data)
        n.applied = snap.meta.index
        n.pending = None
        n.live_commit = n.raft.commit_index
        if n.live_commit < n.durable_commit:
            self.fail(f"node {n.id} restarted with commit {n.live_commit} < {n.durable_commit}")
        n.checked = n.storage.first_index() - 1  # re-check the durable log after a restart

    def alive(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.raft is not None]

    def leader(self) -> SimNode | None:
        best: SimNode | None = None
        for n in self.nodes.values():
            r = n.raft
            if r is not None and r.role == Role.LEADER:
                assert best is None or best.raft is not None
                if best is None or r.term > best.raft.term:  # type: ignore[union-attr]
                    best = n
        return best

    # --------------------------------------------------------------------- step
    def step(self, faults: bool = True) -> None:
        self.now += 1
        rng = self.rng
        if faults:
            if rng.random() < self.p.fault_rate:
                self._fault()
            if rng.random() < self.p.client_rate:
                self._client()
        for m in self.net.due(self.now):
            n = self.nodes.get(m.to_id)
            if n is not None and n.paused_until > self.now:
                self.net.hold(m, n.paused_until)
                continue
            if n is not None and n.raft is not None:
                if self.verbose:
                    self._log(f"deliver {m.type.name} {m.from_id}->{m.to_id} t{m.term} {_brief(m)}")
                n.raft.step(m)
        for to, about in self.net.due_signals(self.now):
            n = self.nodes.get(to)
            if n is not None and n.raft is not None and n.paused_until <= self.now:
                self._log(f"node {to} lost its connection to {about}")
                if n.raft.leader == about and n.raft.role == Role.FOLLOWER:
                    self.stats["leader_lost"] += 1
                n.raft.leader_lost(about)
        for n in self.nodes.values():
            if n.paused_until > self.now:
                continue
            if n.pending is not None and n.done_at <= self.now:
                rd = n.pending
                n.pending = None
                self._complete(n, rd)
        for n in self.nodes.values():
            if n.raft is not None and n.paused_until <= self.now:
                n.raft.tick()
        for n in self.nodes.values():
            if n.paused_until <= self.now:
                self._pump(n)
        self._check()

    def _pump(self, n: SimNode) -> None:
        for _ in range(4):
            r = n.raft
            if r is None or n.pending is not None or not r.has_ready():
                return
            rd = r.ready()
            if rd.must_persist():
                lat = self.rng.randint(0, self.p.disk_latency)
                if lat > 0:
                    n.pending = rd
                    n.done_at = self.now + lat
                    return
            self._complete(n, rd)

    def _complete(self, n: SimNode, rd: Ready) -> None:
        """The disk confirmed ``rd``: it is durable; now send, apply, advance."""
        r = n.raft
        assert r is not None
        st = n.storage
        snap = rd.snapshot_to_apply
        if snap is not None:
            if snap.meta.index < n.durable_commit:
                self.fail(f"node {n.id} snapshot {snap.meta.index} below commit {n.durable_commit}")
            st.apply_snapshot(snap)
            self.stats["snapshots"] += 1
            self._log(f"node {n.id} installs snapshot at {snap.meta.index}")
        if rd.entries_to_persist:
            first = rd.entries_to_persist[0].index
            if first <= n.durable_commit:
                self.fail(f"node {n.id} overwrites committed offset {first} <= {n.durable_commit}")
            if first <= st.last_index():
                self.stats["truncations"] += 1
            st.append(rd.entries_to_persist)
        hs = rd.hard_state
        if hs is not None:
            if hs.commit < n.durable_commit:
                self.fail(f"node {n.id} durable commit went back {n.durable_commit} -> {hs.commit}")
            if hs.commit > st.last_index():
                self.fail(f"node {n.id} commit {hs.commit} beyond its durable log")
            n.durable_commit = hs.commit
            st.set_hard_state(hs)
        # A broker's storage owes its fsyncs (the log's, the state journal's) until now.
        take_sync = getattr(st, "take_sync", None)
        sync = take_sync() if take_sync is not None else None
        if sync is not None:
            sync()
        for m in rd.messages:
            self._check_vote(m)
            self.net.send(m, self.now)
        if snap is not None:
            n.sm = decode_sm(snap.data)
            n.applied = snap.meta.index
        for e in rd.committed_entries:
            self._apply(n, e)
        r.advance(rd)

    def _check_vote(self, m: Message) -> None:
        if m.type == MessageType.VOTE:  # a candidate voted for itself
            candidate = m.from_id
        elif m.type == MessageType.VOTE_RESP and not m.reject:
            candidate = m.to_id
        else:
            return
        given = self.votes.setdefault((m.from_id, m.term), candidate)
        if given != candidate:
            self.fail(f"node {m.from_id} voted for {given} and for {candidate} in term {m.term}")

    def _apply(self, n: SimNode, e: Entry) -> None:
        if e.index <= n.applied:
            self.fail(f"node {n.id} re-applies {e.index} (applied {n.applied})")
        if e.index != n.applied + 1:
            self.fail(f"node {n.id} applies {e.index} after {n.applied}: gap")
        self._chain_check(n.id, e)
        if e.kind == EntryKind.NORMAL:
            n.sm[e.index] = (e.term, self._value(e.data))
        n.applied = e.last
        prop = self.pending_props.pop((n.id, e.index), None)
        if prop is not None and prop[0] == e.term and self._same(prop[1], e.data):
            self._ack(e, prop[2], n)

    def _value(self, data: bytes) -> str:
        return data.decode() if self.disk is None else batch_payload(data).hex()

    def _same(self, a: bytes, b: bytes) -> bool:
        return a == b if self.disk is None else batch_payload(a) == batch_payload(b)

    def _ack(self, e: Entry, voters_then: int, n: SimNode) -> None:
        r = n.raft
        assert r is not None
        # the entry was committed under one of the configurations the leader had between
        # proposing and acknowledging it (each in effect as soon as appended)
        sizes = [voters_then, len(r.config.voters)]
        sizes += [
            len(ConfigState.decode(c.data).voters)
            for c in n.storage.config_entries()
            if c.index > e.index
        ]
        need = min(sizes) // 2 + 1
        holders = 0
        for m in self.nodes.values():
            st = m.storage
            if st.term(e.index) == e.term or e.index <= st.snapshot_meta().index:
                holders += 1
        if holders < need:
            self.fail(f"acked offset {e.index} is durable on {holders} nodes, need {need}")
        self.acked.append((e.index, e.term, e.data))
        self.stats["acked"] += 1

    def _chain_check(self, node_id: int, e: Entry) -> None:
        c = self.chain.get(e.index)
        data = e.data
        if self.disk is not None and e.kind == EntryKind.NORMAL:
            data = batch_payload(data)
        key = (e.last, e.term, data, int(e.kind))
        if c is None:
            if e.index != self.chain_end + 1:
                self.fail(
                    f"node {node_id} committed entry at {e.index} but the committed log ends "
                    f"at {self.chain_end}"
                )
            self.chain[e.index] = key
            self.chain_end = e.last
        elif c != key:
            self.fail(f"node {node_id} committed entry {e} differs from the committed {c}")

    # ---------------------------------------------------------------- invariants
    def _check(self) -> None:
        for n in self.nodes.values():
            r = n.raft
            if r is None:
                continue
            if r.role == Role.LEADER:
                prev = self.leaders_by_term.setdefault(r.term, n.id)
                if prev == n.id and len(self.leaders_by_term) > self.stats["elections"]:
                    self.stats["elections"] = len(self.leaders_by_term)
                    self._log(f"node {n.id} leads term {r.term}")
                if prev != n.id:
                    self.fail(f"two leaders in term {r.term}: {prev} and {n.id}")
            c = r.commit_index
            if c < n.live_commit:
                self.fail(f"node {n.id} commit went back {n.live_commit} -> {c}")
            n.live_commit = c
            if c > n.checked:
                self._check_log(n, c)

    def _check_log(self, n: SimNode, upto: int) -> None:
        """Log Matching: the node's log up to its commit equals the committed log."""
        r = n.raft
        assert r is not None
        lo = max(n.checked + 1, r.log.first_index())
        if lo > upto:
            n.checked = upto
            return
        while lo <= upto:
            ents = r.log.entries_from(lo, 1 << 30, upto + 1)
            if not ents:
                self.fail(f"node {n.id} lost committed entries from {lo} (commit {upto})")
                return
            for e in ents:
                self._chain_check(n.id, e)
            lo = ents[-1].last + 1
        n.checked = upto

    # -------------------------------------------------------------------- faults
    def _fault(self) -> None:
        rng = self.rng
        self.stats["faults"] += 1
        kinds = ["partition", "oneway", "heal", "heal", "crash", "restart", "restart"]
        kinds += ["crash_leader", "isolate_leader", "pause", "pause_leader", "reset"]
        if self.p.transfer:
            kinds += ["transfer", "transfer"]
        if self.p.membership:
            kinds += ["config", "config"]
        if self.p.compaction:
            kinds += ["compact", "compact"]
        kind = rng.choice(kinds)
        ids = list(self.nodes)
        if kind == "partition":
            rng.shuffle(ids)
            k = rng.randint(1, len(ids) // 2)
            a, b = ids[:k], ids[k:]
            for x in a:
                for y in b:
                    self.net.blocked.add((x, y))
                    self.net.blocked.add((y, x))
            self._log(f"partition {sorted(a)} | {sorted(b)}")
        elif kind == "oneway":
            x, y = rng.sample(ids, 2)
            self.net.blocked.add((x, y))
            self._log(f"block {x} -> {y}")
        elif kind == "reset":
            # A connection reset between two live nodes (a flapping link, a restarted
            # transport): a false alarm, which must not hurt safety.
            x, y = rng.sample(ids, 2)
            self.net.signal_lost(x, y, self.now)
            self.net.signal_lost(y, x, self.now)
            self._log(f"reset {x} <-> {y}")
        elif kind == "heal":
            self.net.blocked.clear()
            self._log("heal")
        elif kind == "isolate_leader":
            ld = self.leader()
            if ld is not None:
                # the leader, maybe with one follower, on the minority side
                minority = [ld.id]
                if len(ids) >= 5 and rng.random() < 0.5:
                    minority.append(rng.choice([i for i in ids if i != ld.id]))
                for x in minority:
                    for y in ids:
                        if y not in minority:
                            self.net.blocked.add((x, y))
                            self.net.blocked.add((y, x))
                self._log(f"isolate {minority}")
        elif kind in ("pause", "pause_leader"):
            ld = self.leader()
            n = ld if kind == "pause_leader" and ld is not None else self.nodes[rng.choice(ids)]
            n.paused_until = self.now + rng.randint(3, 40)
            self._log(f"pause {n.id} until {n.paused_until}")
        elif kind in ("crash", "crash_leader"):
            down = sum(1 for n in self.nodes.values() if n.raft is None)
            if down >= (self.p.nodes - 1) // 2 + (1 if self.p.nodes == 3 else 0):
                return
            ld = self.leader()
            n = ld if kind == "crash_leader" and ld is not None else self.nodes[rng.choice(ids)]
            if n.raft is not None:
                self._log(f"crash {n.id} (lost pending write: {n.pending is not None})")
                n.raft = None
                for other in self.nodes.values():
                    if other is not n and other.raft is not None:
                        self.net.signal_lost(n.id, other.id, self.now)
                if self.disk is not None:
                    n.storage = self.disk.crash(n.id, n.pending, rng)
                    self._log(f"node {n.id} recovered: log {n.storage.first_index()}.."
                              f"{n.storage.last_index()}")
                n.pending = None
        elif kind == "restart":
            down = [n for n in self.nodes.values() if n.raft is None]
            if down:
                n = rng.choice(down)
                self._start(n)
                self._log(f"restart {n.id} (commit {n.live_commit})")
        elif kind == "transfer":
            ld = self.leader()
            if ld is not None and ld.raft is not None:
                voters = sorted(ld.raft.config.voters)
                to = rng.choice(voters)
                try:
                    ld.raft.transfer_leadership(to)
                    self.stats["transfers"] += 1
                    self._log(f"transfer {ld.id} -> {to}")
                except (NotLeader, ValueError):
                    pass
        elif kind == "config":
            self._config_change()
        elif kind == "compact":
            n = self.nodes[rng.choice(ids)]
            if n.raft is None or n.pending is not None:
                return
            st = n.storage
            if n.applied - st.first_index() >= 4 and n.applied <= st.last_index():
                st.compact(n.applied, encode_sm(n.applied, n.sm))
                self.stats["compactions"] += 1
                self._log(f"compact {n.id} at {n.applied}")

    def _config_change(self) -> None:
        ld = self.leader()
        if ld is None or ld.raft is None:
            return
        r = ld.raft
        voters = sorted(r.config.voters)
        others = [i for i in self.nodes if i not in r.config.voters]
        rng = self.rng
        if others and (len(voters) <= 3 or rng.random() < 0.5):
            change, who = ConfigChangeType.ADD_VOTER, rng.choice(others)
        elif len(voters) > 3:
            change, who = ConfigChangeType.REMOVE_VOTER, rng.choice(voters)
        else:
            return
        try:
            idx = r.propose_config_change(change, who)
            self.stats["config_changes"] += 1
            self._log(f"leader {ld.id} proposes {change.name} {who} at {idx}")
        except (NotLeader, ProposalDropped):
            pass

    def _client(self) -> None:
        n = self.nodes.get(self.client_target)
        if n is None or n.raft is None:
            self.client_target = self.rng.choice(list(self.nodes))
            return
        r = n.raft
        self.client_seq += 1
        count = self.rng.choice([1, 1, 2, 5])
        if self.disk is None:
            data = f"w{self.client_seq}".encode()
        else:  # a real RecordBatch v2 whose records are the offsets it covers
            data = self.disk.proposal(self.client_seq, count)
        try:
            idx = r.propose(data, count)
        except NotLeader as e:
            hint = e.leader_hint
            self.client_target = hint if hint is not None else self.rng.choice(list(self.nodes))
            return
        except ProposalDropped:
            return
        self.stats["proposed"] += 1
        self.pending_props[(n.id, idx)] = (r.term, data, len(r.config.voters))

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, int]:
        try:
            for _ in range(self.steps):
                self.step()
            self.finish()
        finally:
            if self.disk is not None:
                self.disk.close()
                self.stats.update(self.disk.stats)
        return self.stats

    def finish(self, quiesce: int = 3000) -> None:
        """Heal everything, restart every node, and wait for the group to converge; then
        every acknowledged write must be on every voter and in its committed prefix."""
        self.net.blocked.clear()
        for n in self.nodes.values():
            n.paused_until = 0
        self.p.drop = 0.0
        self.p.dup = 0.0
        self.p.long_delay = 0.0
        for n in self.nodes.values():
            if n.raft is None:
                self._start(n)
        self._log("final heal")
        for _ in range(quiesce):
            self.step(faults=False)
            if self._converged():
                break
        else:
            ld = self.leader()
            self.fail(
                "no convergence after the final heal (leader: "
                f"{ld.id if ld else None}); state: {self._describe()}"
            )
        ld = self.leader()
        assert ld is not None and ld.raft is not None
        for v in sorted(ld.raft.config.voters):
            n = self.nodes[v]
            r = n.raft
            assert r is not None
            n.checked = r.log.first_index() - 1
            self._check_log(n, r.commit_index)
            snap_index = n.storage.snapshot_meta().index
            for index, term, data in self.acked:
                if index > r.commit_index:
                    self.fail(f"acked offset {index} not committed on node {v}")
                if n.storage.term(index) != term and index > snap_index:
                    self.fail(f"acked offset {index} missing from node {v}'s log")
                if n.sm.get(index) != (term, self._value(data)):
                    self.fail(f"acked offset {index} missing from node {v}'s state machine")

    def _converged(self) -> bool:
        ld = self.leader()
        if ld is None or ld.raft is None:
            return False
        r = ld.raft
        last = r.last_index
        if r.commit_index != last or r.log.term(last) != r.term:
            return False
        for v in r.config.voters:
            n = self.nodes[v]
            if n.raft is None or n.pending is not None:
                return False
            if n.raft.commit_index != last or n.raft.last_index != last or n.applied != last:
                return False
        return True

    def _describe(self) -> str:
        parts = []
        for n in self.nodes.values():
            r = n.raft
            if r is None:
                parts.append(f"{n.id}:down")
                continue
            parts.append(
                f"{n.id}:{r.role.name}/t{r.term}/last{r.last_index}/c{r.commit_index}"
                f"/lead{r.leader}/voters{sorted(r.config.voters)}"
            )
        return " ".join(parts)


def _brief(m: Message) -> str:
    if m.entries:
        return f"prev={m.prev_index}/{m.prev_term} n={len(m.entries)} c={m.commit}"
    if m.snapshot is not None:
        return f"snap={m.snapshot.meta.index}"
    return f"idx={m.index} rej={m.reject} hint={m.reject_hint} c={m.commit}"


def run_seed(seed: int, steps: int, nodes: int, verbose: bool = False) -> dict[str, int]:
    return SimCluster(seed, nodes=nodes, steps=steps, verbose=verbose).run()


def make_cluster(seed: int, nodes: int, steps: int, verbose: bool = False,
                 real_storage: bool = False) -> SimCluster:
    """A cluster over MemoryStorage, or over real partition logs with crash damage."""
    if not real_storage:
        return SimCluster(seed, nodes=nodes, steps=steps, verbose=verbose)
    from tests.sim.real_storage import RealDisk

    # Odd seeds keep the hard state in the broker's state journal, even ones in the
    # partition's own state file.
    return SimCluster(seed, nodes=nodes, steps=steps, verbose=verbose,
                      disk=RealDisk(journal=seed % 2 == 1))


def nodes_for_seed(seed: int) -> int:
    return 3 if seed % 2 == 0 else 5


__all__ = ["SimCluster", "Violation", "replay_command", "run_seed", "nodes_for_seed", "Snapshot"]
