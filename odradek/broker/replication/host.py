"""Drives many Raft groups on one broker: ticks them, feeds them messages from the
transport, and carries out their Ready (persist, send, report) in one pass per loop turn.

Proposals that arrive in the same event-loop turn are persisted by one write: that is
the group commit. Every group ticks on the same timer, so the heartbeats of all groups
bound for one broker leave in the same transport envelope.

Idle groups are quiesced, so that a broker with thousands of idle partitions costs little:
once a leader's group has been caught up and unchanged for a while, it tells the followers
to stop ticking and stops its own heartbeats. Liveness then comes from one signal per
broker pair (the transport's pings): a quiet follower wakes, and may start an election,
when nothing has arrived from the leader's broker within an election timeout. Any message,
proposal or leadership change wakes a group.

Fsyncs run behind the loop when the host has a Syncer (a broker's: a few worker
threads): a Ready's writes go to the page cache on the loop, the fsyncs its storage owes
for them (``take_sync``) go to the syncer, one job per group, and only when that job is
done are the Ready's messages sent (a leader's leave at once unless its term or vote
changed: it writes its log beside its followers) and the Ready advanced (a leader's own
entries count for the commit only then). Terms and votes go to the broker's state
journal (``journal``): the first job of a turn fsyncs the records of every group of that
turn, and the other groups' jobs find theirs durable. Meanwhile the group takes
messages and proposals (Raft's log keeps them unstable) but no new Ready, so each
group's writes and fsyncs stay in order and nothing is acknowledged before it is
durable."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, runtime_checkable

from odradek.broker import clock, regressions
from odradek.broker.replication.quiet import QuietGroups
from odradek.broker.replication.state_journal import StateJournal
from odradek.raft import Message, MessageType, RaftNode, Ready, Role
from odradek.raft.storage import PersistentLogStorage
from odradek.storage import CorruptBatchError

log = logging.getLogger("odradek.raft")

Send = Callable[[int, str, Message], None]
_ACKS = frozenset({MessageType.APPEND_RESP, MessageType.HEARTBEAT_RESP})
# Messages kept for an expected group: its first election's few, not a backlog.
EXPECTED_KEPT = 16


class GroupListener(Protocol):
    def on_persisted(self, ready: Ready) -> None:
        """The Ready's entries and hard state are stored; before messages are sent."""

    def on_ready(self, ready: Ready) -> None:
        """After the Ready was carried out: commit index, role and leader are current."""

    def acknowledged(self, node_id: int) -> None:
        """As leader: node_id acknowledged an append or heartbeat of the current term."""

    def heard_from(self, node_id: int) -> None:
        """A message from another replica of the group arrived."""


@runtime_checkable
class SyncBehind(Protocol):
    def take_sync(self) -> Callable[[], None] | None:
        """The fsyncs owed by the writes since the last call, or None."""


COMPACT_RETRY_S = 10.0
SyncDone = Callable[[list[BaseException | None]], None]


class Syncer(Protocol):
    def submit(self, syncs: list[Callable[[], None]], done: SyncDone) -> None:
        """Runs the syncs in order, later than now; then done(one outcome per sync), on
        the event loop."""


class ThreadSyncer:
    """Runs fsyncs in worker threads. The host has at most one job per group in flight,
    so a group's fsyncs stay in order however many workers there are."""

    def __init__(self, workers: int = 4, name: str = "odradek-fsync") -> None:
        self._worker = ThreadPoolExecutor(workers, thread_name_prefix=name)

    def submit(self, syncs: list[Callable[[], None]], done: SyncDone) -> None:
        loop = asyncio.get_running_loop()

        def run() -> None:
            outcomes = run_syncs(syncs)
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                loop.call_soon_threadsafe(done, outcomes)

        self._worker.submit(run)

    def close(self) -> None:
        self._worker.shutdown(wait=True)


def run_syncs(syncs: list[Callable[[], None]]) -> list[BaseException | None]:
    """Runs each sync; what each raised (handed to the loop, which abandons that Ready)."""
    outcomes: list[BaseException | None] = []
    for sync in syncs:
        try:
            sync()
        except BaseException as exc:
            outcomes.append(exc)
        else:
            outcomes.append(None)
    return outcomes


class RaftGroup:
    def __init__(self, name: str, node: RaftNode, storage: PersistentLogStorage,
                 listener: GroupListener) -> None:
        self.name = name
        self.node = node
        self.storage = storage
        self.listener = listener
        self.vote = (node.term, node.vote)  # of the last durable hard state

    def leads_in_same_vote(self, ready: Ready) -> bool:
        """Is this a leader's Ready that changes neither term nor vote? Its messages may
        leave before its own fsync (Raft's leader writes its log in parallel with its
        followers; its own entries count for the commit only once durable), while a vote
        or a follower's acknowledgement must wait for it."""
        hs = ready.hard_state
        same = hs is None or (hs.term, hs.vote) == self.vote
        return same and ready.soft_state.role == Role.LEADER and ready.snapshot_to_apply is None


class ElectionCounter:
    """Counts the elections this host's groups start and win, from their role changes."""

    def __init__(self) -> None:
        self.started = 0
        self.won = 0
        self._roles: dict[str, Role] = {}

    def role(self, group: str, role: Role) -> None:
        if role == self._roles.get(group, Role.FOLLOWER):
            return
        self._roles[group] = role
        if role == Role.CANDIDATE:
            self.started += 1
        elif role == Role.LEADER:
            self.won += 1

    def forget(self, group: str) -> None:
        self._roles.pop(group, None)


class RaftHost:
    def __init__(self, broker_id: int, send: Send, tick_interval_s: float = 0.1,
                 alive: Callable[[int], bool] | None = None,
                 on_tick: Callable[[], None] | None = None,
                 quiesce_after_ticks: int = 20, stall_after_s: float = 0.5,
                 syncer: Syncer | None = None, journal: StateJournal | None = None) -> None:
        self.broker_id = broker_id
        self.syncer = syncer
        # The hard states of this host's partitions, fsynced once for all groups of a turn.
        self.journal = journal if syncer is not None else None
        self._owed: list[tuple[RaftGroup, Ready, Callable[[], None]]] = []
        self._compacting = False  # a journal compaction job is in flight
        self._compact_after = -math.inf  # after a failed compaction: when to try again
        self.send = send
        self.tick_interval_s = tick_interval_s
        # Without a liveness signal groups never quiesce (every follower must keep its timer).
        self._alive = alive
        self._on_tick = on_tick
        self.quiesce_after_ticks = quiesce_after_ticks
        self.quiet = QuietGroups()
        # The groups that are not quiet, in the order they woke: the ones a tick walks.
        self._awake: dict[str, None] = {}
        self._calm: dict[str, tuple[tuple[int, int, int], int]] = {}
        self.groups: dict[str, RaftGroup] = {}
        # Groups with work for the next process(), in the order they got it (a seed replays
        # the same order whatever the string hash seed).
        self._dirty: dict[str, None] = {}
        self._scheduled = False
        self._ticker: asyncio.Task[None] | None = None
        self.elections = ElectionCounter()
        # A gap this long between ticks means the process was paused or starved: what it
        # heard before and just after (its socket buffers) may be stale.
        self.stall_after_s = stall_after_s
        self._last_tick = clock.monotonic()
        self._stall_ended = -math.inf
        self._failing: set[str] = set()
        self._syncing: set[str] = set()  # groups whose fsync job is in flight
        # Groups about to be added (their directories are being made durable): what
        # arrives for them meanwhile is kept and stepped on add, so that a new group's
        # first election is not lost to a replica that starts a moment later.
        self._expected: dict[str, list[Message]] = {}

    def awake_groups(self) -> list[str]:
        """The groups that are not quiet (a quiet group's state does not change)."""
        return list(self._awake)

    def busy(self, name: str) -> bool:
        """Is a Ready of this group still being persisted (written, fsync owed)?"""
        return name in self._syncing or any(job[0].name == name for job in self._owed)

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self.process()

    def expect(self, name: str) -> None:
        """The group will be added soon: keep its messages until then (a few at most)."""
        self._expected.setdefault(name, [])

    def add(self, group: RaftGroup) -> None:
        self.groups[group.name] = group
        if group.name not in self.quiet:
            self._awake[group.name] = None
        for message in self._expected.pop(group.name, ()):
            self.deliver(group.name, message)
        self.schedule(group.name)

    def remove(self, name: str, forget_state: str | None = None) -> RaftGroup | None:
        """forget_state: the journal key of a replica deleted for good."""
        if forget_state is not None and self.journal is not None:
            self.journal.forget(forget_state)
        self._expected.pop(name, None)
        self._dirty.pop(name, None)
        self.quiet.discard(name)
        self._awake.pop(name, None)
        self._calm.pop(name, None)
        self.elections.forget(name)
        return self.groups.pop(name, None)

    def deliver(self, group_name: str, message: Message) -> None:
        group = self.groups.get(group_name)
        if group is None:
            kept = self._expected.get(group_name)
            if kept is not None and len(kept) < EXPECTED_KEPT:
                kept.append(message)
            return  # a group we no longer (or do not yet) host: Raft tolerates the loss
        group.listener.heard_from(message.from_id)
        if message.type == MessageType.QUIESCE:
            node = group.node
            if node.leader == message.from_id and node.term == message.term:
                self._fall_quiet(group_name, node.leader)
            return
        node = group.node
        try:
            node.step(message)
        except CorruptBatchError:
            return  # the log's observer has the replica repaired (replication/repair.py)
        if message.type in _ACKS and message.term == node.term and node.is_leader():
            group.listener.acknowledged(message.from_id)
        # Late acknowledgements to a quiet leader do not wake it; anything else does.
        wake = message.type not in _ACKS or message.term != group.node.term
        self.schedule(group_name, wake)

    def broker_lost(self, broker_id: int) -> None:
        """The transport's connection to broker_id broke and the broker refuses new ones
        (its process is gone): every group it led here campaigns at once instead of
        waiting out its election timeout. One connection carries all the groups between
        two brokers, so one signal fails them all over, quiet ones included."""
        if broker_id == self.broker_id:
            return
        led = [name for name, group in self.groups.items()
               if group.node.leader == broker_id and not group.node.is_leader()]
        if led:
            log.info("broker %d lost: %d raft groups it led campaign", broker_id, len(led))
        for name in led:
            self.groups[name].node.leader_lost(broker_id)
            self.schedule(name)

    def schedule(self, name: str, wake: bool = True) -> None:
        if wake and self.quiet.discard(name):
            self._awake[name] = None
            self._calm.pop(name, None)
        self._dirty[name] = None
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.process)

    def process(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, {}
        for name in dirty:
            group = self.groups.get(name)
            if group is not None:
                self._guarded(group, self._handle)
        owed, self._owed = self._owed, []
        for job in owed:
            self._syncing.add(job[0].name)
            # One job per group: fsyncs of different partitions' files run side by side,
            # and one group's never waits behind another's.
            assert self.syncer is not None
            self.syncer.submit([job[2]], functools.partial(self._synced, [job]))
        if self.journal is not None and not self._compacting \
                and clock.monotonic() >= self._compact_after and self.journal.compaction_due:
            self._compact_journal(self.journal)

    def _compact_journal(self, journal: StateJournal) -> None:
        """In a job of its own: no group's fsync waits behind the rewrite (though one
        that starts during it waits for it: the journal allows one at a time)."""
        def done(outcomes: list[BaseException | None]) -> None:
            self._compacting = False
            if outcomes[0] is not None:
                self._compact_after = clock.monotonic() + COMPACT_RETRY_S
                log.error("raft state journal compaction failed (%s); trying again in %.0f s",
                          outcomes[0], COMPACT_RETRY_S)

        self._compacting = True
        assert self.syncer is not None
        self.syncer.submit([journal.compact_if_due], done)

    def _guarded(self, group: RaftGroup, step: Callable[[RaftGroup], None]) -> None:
        name = group.name
        try:
            step(group)
        except Exception:
            # Once per failure, not once per tick of retries.
            if name not in self._failing:
                self._failing.add(name)
                log.exception("raft group %s failed to process its ready state", name)
        else:
            if name in self._failing:
                self._failing.discard(name)
                log.info("raft group %s processes its ready state again", name)

    def _handle(self, group: RaftGroup) -> None:
        node = group.node
        while node.has_ready():
            ready = node.ready()
            storage = group.storage
            try:
                if ready.snapshot_to_apply is not None:
                    storage.apply_snapshot(ready.snapshot_to_apply)
                if ready.entries_to_persist:
                    storage.append(ready.entries_to_persist)
                if ready.hard_state is not None:
                    storage.set_hard_state(ready.hard_state)
                sync = storage.take_sync() if isinstance(storage, SyncBehind) else None
                if sync is not None and self.syncer is None:
                    sync()
                    sync = None
            except BaseException:
                # Not durable, so not acknowledged: retried from the next tick on (the
                # append truncates whatever part of it reached the log first).
                node.abandon(ready)
                raise
            if sync is not None:
                planted = regressions.SENDS_BEFORE_FSYNC in regressions.reintroduced
                if planted or group.leads_in_same_vote(ready):
                    for message in ready.messages:
                        self.send(message.to_id, group.name, message)
                    ready = dataclasses.replace(ready, messages=[])
                self._owed.append((group, ready, sync))
                return  # the rest when the fsync is done (_synced)
            self._finish(group, ready)

    def _finish(self, group: RaftGroup, ready: Ready) -> None:
        if ready.hard_state is not None:
            group.vote = (ready.hard_state.term, ready.hard_state.vote)
        group.listener.on_persisted(ready)
        for message in ready.messages:
            self.send(message.to_id, group.name, message)
        group.node.advance(ready)
        self.elections.role(group.name, ready.soft_state.role)
        group.listener.on_ready(ready)

    def _synced(self, owed: list[tuple[RaftGroup, Ready, Callable[[], None]]],
                outcomes: list[BaseException | None]) -> None:
        for (group, ready, _), error in zip(owed, outcomes, strict=True):
            self._syncing.discard(group.name)
            if self.groups.get(group.name) is not group:
                continue  # removed (topic deleted, broker stopping) while it synced

            def finish(g: RaftGroup, ready: Ready = ready,
                       error: BaseException | None = error) -> None:
                if error is not None:
                    g.node.abandon(ready)  # not durable: its messages are not sent
                    raise error
                self._finish(g, ready)

            self._guarded(group, finish)
            self.schedule(group.name)

    def fresh_since(self) -> float:
        """Acknowledgements received before this time may be stale and prove nothing about
        the present (math.inf while a stall is under way that no tick has seen yet)."""
        now = clock.monotonic()
        if now - self._last_tick > self.stall_after_s:
            return math.inf
        return self._stall_ended + self.tick_interval_s

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval_s)
            now = clock.monotonic()
            if now - self._last_tick > self.stall_after_s:
                self._stall_ended = now
                log.warning("broker %d did not run for %.1fs (paused or starved)",
                            self.broker_id, now - self._last_tick)
            self._last_tick = now
            if self._on_tick is not None:
                self._on_tick()
            self.tick()

    def tick(self) -> None:
        # Most groups are quiet on an idle broker: ask about each leader's broker once per
        # tick, and walk only the groups that are awake.
        for leader in self.quiet.leaders():
            if leader is None or leader == self.broker_id:
                continue
            if self._alive is not None and self._alive(leader):
                continue
            woken = self.quiet.wake_led_by(leader)  # time out as usual
            for name in woken:
                self._awake[name] = None
            log.info("%d raft groups wake: broker %d went silent", len(woken), leader)
        calm: list[str] = []
        groups = self.groups
        for name in self._awake:
            node = groups[name].node
            node.tick()
            if node.is_leader() and self._alive is not None and self._calm_for_long(name, node):
                calm.append(name)
            if node.has_ready():
                self._dirty[name] = None
        if self._dirty:
            self.process()
        # Only now, after this tick's heartbeats left: QUIESCE must be the last message a
        # follower gets from its leader. A heartbeat behind it would wake the follower,
        # which then times out against a leader that no longer sends anything.
        for name in calm:
            self._quiesce(name)

    def _calm_for_long(self, name: str, node: RaftNode) -> bool:
        """Has the leader's group been caught up and unchanged for quiesce_after_ticks?"""
        last = node.last_index
        caught_up = node.commit_index == last and node.lead_transferee is None and all(
            p.match == last for v, p in node.progress.items() if v != self.broker_id)
        if not caught_up or node.config_index > node.commit_index:
            self._calm.pop(name, None)
            return False
        state = (node.term, last, node.commit_index)
        seen, ticks = self._calm.get(name, (state, 0))
        ticks = ticks + 1 if seen == state else 0
        self._calm[name] = (state, ticks)
        return ticks >= self.quiesce_after_ticks

    def _quiesce(self, name: str) -> None:
        group = self.groups.get(name)
        if group is None or name in self._dirty:
            return
        node = group.node
        if not node.is_leader() or node.has_ready():
            return  # something happened while this tick's messages were sent: stay awake
        for voter in node.config.voters:
            if voter != self.broker_id:
                self.send(voter, name, Message(MessageType.QUIESCE, self.broker_id, voter,
                                               node.term))
        self._fall_quiet(name, node.leader)
        self._calm.pop(name, None)

    def _fall_quiet(self, name: str, leader: int | None) -> None:
        self.quiet.add(name, leader)
        self._awake.pop(name, None)
