"""Three replicas of one partition in one process: the real Raft core, the real partition
log on disk and the real host, joined by a loopback transport that can cut a node off."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from odradek.broker import regressions
from odradek.broker.errors import BrokerError
from odradek.broker.replication.host import RaftGroup, RaftHost, SyncDone, run_syncs
from odradek.broker.replication.log_storage import PartitionRaftStorage
from odradek.broker.replication.replica import ReplicatedPartition
from odradek.raft import Message, MessageType, RaftConfig, RaftNode
from odradek.records import encode_batch, iter_records
from odradek.storage import LogConfig, PartitionLog

GROUP = "t-0"
IDS = (1, 2, 3)


class Net:
    def __init__(self) -> None:
        self.hosts: dict[int, RaftHost] = {}
        self.down: set[int] = set()
        # Changes or drops (None) a message on its way.
        self.rewrite: Callable[[Message], Message | None] = lambda m: m

    def sender(self, src: int) -> Callable[[int, str, Message], None]:
        def send(dst: int, group: str, msg: Message | None) -> None:
            if src in self.down or dst in self.down or dst not in self.hosts:
                return
            msg = self.rewrite(msg)  # type: ignore[arg-type]
            if msg is None:
                return
            host = self.hosts[dst]
            asyncio.get_running_loop().call_soon(host.deliver, group, msg)
        return send


class HeldSyncer:
    """A fsync thread the test can hold: jobs wait while `held`; `fail` makes the next
    jobs' fsyncs raise OSError (a failing disk), as many as it counts down."""

    def __init__(self) -> None:
        self.held = False
        self.fail = 0
        self.waiting: list[tuple[list[Callable[[], None]], SyncDone]] = []

    def submit(self, syncs: list[Callable[[], None]], done: SyncDone) -> None:
        self.waiting.append((syncs, done))
        if not self.held:
            self.release()

    def release(self) -> None:
        self.held = False
        jobs, self.waiting = self.waiting, []
        for syncs, done in jobs:
            if self.fail > 0:
                self.fail -= 1
                outcomes: list[BaseException | None] = [OSError(5, "EIO") for _ in syncs]
            else:
                outcomes = run_syncs(syncs)
            asyncio.get_running_loop().call_soon(done, outcomes)


class Replica:
    def __init__(self, node_id: int, root: Path, net: Net, quiesce: bool = False,
                 syncer: HeldSyncer | None = None) -> None:
        self.id = node_id
        self.dir = root / f"b{node_id}" / GROUP
        self.net = net
        self.syncer = syncer
        # With a liveness signal (here: "not cut off") idle groups quiesce.
        self.alive: Callable[[int], bool] | None = (
            (lambda peer: peer not in net.down) if quiesce else None)
        self.start()

    def start(self) -> None:
        behind = self.syncer is not None
        self.log = PartitionLog.open(self.dir, LogConfig(segment_bytes=4096,
                                                         flush_messages=1 if behind else 2**62))
        self.storage = PartitionRaftStorage(self.log, IDS, sync_behind=behind)
        self.node = RaftNode(RaftConfig(self.id, election_ticks=5, return_committed_entries=False),
                             self.storage, random.Random(self.id))
        self.host = RaftHost(self.id, self.net.sender(self.id), tick_interval_s=0.01,
                             alive=self.alive, quiesce_after_ticks=5, syncer=self.syncer)
        self.partition = ReplicatedPartition("t", 0, self.log, self.node,
                                             lambda: self.host.schedule(GROUP), lambda _: None,
                                             broker_alive=self.alive or (lambda _: False))
        self.host.add(RaftGroup(GROUP, self.node, self.storage, self.partition))
        self.net.hosts[self.id] = self.host
        self.net.down.discard(self.id)
        self.host.start()

    async def crash(self) -> None:
        self.net.down.add(self.id)
        await self.host.stop()
        self.net.hosts.pop(self.id, None)
        self.partition.close()


async def leader_of(replicas: list[Replica], timeout: float = 10.0) -> Replica:
    async def find() -> Replica:
        while True:
            live = [r for r in replicas if r.id not in r.net.down and r.node.is_leader()]
            if len(live) == 1:
                return live[0]
            await asyncio.sleep(0.01)
    return await asyncio.wait_for(find(), timeout)


def values(replica: Replica) -> list[bytes]:
    data = replica.log.read(replica.log.log_start_offset, 1 << 24,
                            max_offset=replica.partition.high_watermark).data
    return [r.value or b"" for r in iter_records(data)]


async def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async def loop() -> None:
        while not check():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(loop(), timeout)


@pytest.mark.timeout(60)
async def test_replicate_fail_over_and_catch_up(tmp_path: Path) -> None:
    net = Net()
    replicas = [Replica(i, tmp_path, net) for i in IDS]
    try:
        leader = await leader_of(replicas)
        acked = []
        for n in range(20):
            batch = encode_batch([(n, None, b"a%d-%d" % (n, i)) for i in range(5)])
            info = await leader.partition.append(batch, timeout_s=10)
            assert info.last_offset - info.base_offset == 4
            acked += [b"a%d-%d" % (n, i) for i in range(5)]
        await leader.crash()
        survivors = [r for r in replicas if r is not leader]
        new_leader = await leader_of(survivors)
        assert new_leader is not leader
        for n in range(10):
            batch = encode_batch([(n, None, b"b%d" % n)])
            await new_leader.partition.append(batch, timeout_s=10)
            acked.append(b"b%d" % n)
        leader.start()
        await wait_until(lambda: all(values(r) == acked for r in replicas))
        ends = {r.log.log_end_offset for r in replicas}
        assert len(ends) == 1
    finally:
        for r in replicas:
            if r.id not in net.down:
                await r.crash()


async def quiet_after_one_write(replicas: list[Replica]) -> Replica:
    """Writes b"v" once all are in sync, waits for the group to quiesce everywhere, and
    returns the leader."""
    leader = await leader_of(replicas)
    await wait_until(lambda: len(leader.partition.in_sync_replicas()) == 3)
    await leader.partition.append(encode_batch([(0, None, b"v")]), timeout_s=5)
    await wait_until(lambda: all(GROUP in r.host.quiet for r in replicas))
    return leader


@pytest.mark.timeout(60)
async def test_an_idle_group_quiesces_and_keeps_its_leader(tmp_path: Path) -> None:
    """Once quiet, nobody ticks: no follower may be left awake to time out against a leader
    that stopped its heartbeats (a heartbeat sent after QUIESCE used to wake followers,
    and an idle cluster changed leaders every second or two)."""
    net = Net()
    replicas = [Replica(i, tmp_path, net, quiesce=True) for i in IDS]
    try:
        leader = await quiet_after_one_write(replicas)
        term = leader.node.term
        await asyncio.sleep(1.0)  # 100 ticks, 20 election timeouts
        assert [r.node.term for r in replicas] == [term] * 3
        assert leader.node.is_leader()
        assert all(GROUP in r.host.quiet for r in replicas)
        # A write wakes the group and commits everywhere.
        await leader.partition.append(encode_batch([(1, None, b"w")]), timeout_s=5)
        await wait_until(lambda: all(values(r) == [b"v", b"w"] for r in replicas))
    finally:
        for r in replicas:
            await r.crash()


@pytest.mark.timeout(60)
async def test_quiet_followers_elect_a_new_leader_when_theirs_goes_silent(
        tmp_path: Path) -> None:
    """A quiet group is not ticked; its followers must still wake (all of one leader's
    groups at once) when that leader's broker goes silent, and elect a new one."""
    net = Net()
    replicas = [Replica(i, tmp_path, net, quiesce=True) for i in IDS]
    try:
        leader = await quiet_after_one_write(replicas)
        await leader.crash()
        survivors = [r for r in replicas if r is not leader]
        new_leader = await leader_of(survivors)
        await new_leader.partition.append(encode_batch([(1, None, b"w")]), timeout_s=5)
        await wait_until(lambda: all(values(r) == [b"v", b"w"] for r in survivors))
    finally:
        for r in replicas:
            if r.id not in net.down:
                await r.crash()


@pytest.mark.timeout(60)
async def test_a_new_leader_behind_on_its_high_watermark_calls_nothing_out_of_range(
        tmp_path: Path) -> None:
    """A new leader's commit index can lag the high watermark its predecessor exposed until
    its own first entry commits. Meanwhile consumers at offsets they have already read get
    an empty answer (not OFFSET_OUT_OF_RANGE, which would make them reset), and ListOffsets
    a retriable OFFSET_NOT_AVAILABLE (not a high watermark that went back)."""
    net = Net()
    replicas = [Replica(i, tmp_path, net) for i in IDS]
    try:
        old = await leader_of(replicas)
        behind, other = [r for r in replicas if r is not old]
        known = behind.node.commit_index

        def hide_commits(m: Message) -> Message | None:
            # `behind` stores the entries but never learns that they are committed.
            if m.from_id == old.id and m.to_id == behind.id:
                return dataclasses.replace(m, commit=min(m.commit, known))
            return m

        net.rewrite = hide_commits
        for n in range(5):
            await old.partition.append(encode_batch([(n, None, b"v%d" % n)]), timeout_s=10)
        exposed = old.partition.high_watermark
        await wait_until(lambda: behind.log.log_end_offset == old.log.log_end_offset)
        await old.crash()

        def elect_behind(m: Message) -> Message | None:
            # `other` votes for `behind` but never campaigns, and `behind` never hears
            # that its first entry was stored: it stays a leader that is not yet sure.
            if m.from_id == other.id and m.type in (
                    MessageType.VOTE, MessageType.PRE_VOTE, MessageType.APPEND_RESP,
                    MessageType.HEARTBEAT_RESP):
                return None
            return m

        net.rewrite = elect_behind
        await wait_until(lambda: behind.node.is_leader())
        assert behind.partition.high_watermark < exposed  # the case under test
        for offset in (exposed - 1, exposed):
            assert behind.partition.read(offset, 1 << 20).data == b""
        with pytest.raises(BrokerError) as info:
            behind.partition.check_high_watermark_known()
        assert info.value.reason == "OFFSET_NOT_AVAILABLE"

        net.rewrite = lambda m: m
        await wait_until(lambda: behind.partition.high_watermark > exposed)
        behind.partition.check_high_watermark_known()
        got = behind.partition.read(exposed - 1, 1 << 20)
        assert [r.value for r in iter_records(got.data) if r.offset >= exposed - 1] == [b"v4"]

        def beyond_the_end() -> bool:
            try:
                behind.partition.read(behind.log.log_end_offset + 10, 1 << 20)
            except BrokerError as exc:
                return exc.reason == "OFFSET_OUT_OF_RANGE"
            return False
        # Once sure of its leadership it answers out of range beyond its log end.
        await wait_until(beyond_the_end)
    finally:
        for r in replicas:
            if r.id not in net.down:
                await r.crash()


@pytest.mark.timeout(60)
async def test_in_sync_means_holding_what_the_leader_held_a_lag_ago(tmp_path: Path) -> None:
    """As Kafka's ISR: a follower a few writes behind the log end stays in sync; one that
    is alive (it answers heartbeats) but has not caught up for lag_max_s drops out, and
    comes back once it has."""
    net = Net()
    replicas = [Replica(i, tmp_path, net) for i in IDS]
    try:
        leader = await leader_of(replicas)
        leader.partition.lag_max_s = 0.5
        slow = next(r for r in replicas if r is not leader)
        await leader.partition.append(encode_batch([(0, None, b"a")]), timeout_s=10)
        await wait_until(lambda: leader.partition.in_sync_replicas() == list(IDS))

        def starve(m: Message) -> Message | None:
            return None if m.type == MessageType.APPEND and m.to_id == slow.id else m

        net.rewrite = starve
        await leader.partition.append(encode_batch([(1, None, b"b")]), timeout_s=10)
        assert leader.node.progress[slow.id].match < leader.node.commit_index
        assert slow.id in leader.partition.in_sync_replicas()  # behind, within the lag

        async def keep_writing() -> None:
            n = 2
            while slow.id in leader.partition.in_sync_replicas():
                await leader.partition.append(encode_batch([(n, None, b"w")]), timeout_s=10)
                n += 1
                await asyncio.sleep(0.02)
        await asyncio.wait_for(keep_writing(), 20)
        assert slow.node.leader == leader.node.id  # still heard from: alive, just behind

        net.rewrite = lambda m: m
        await leader.partition.append(encode_batch([(99, None, b"z")]), timeout_s=10)
        await wait_until(lambda: slow.id in leader.partition.in_sync_replicas())
    finally:
        for r in replicas:
            if r.id not in net.down:
                await r.crash()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("planted", [False, True], ids=["fixed", "sends-before-fsync"])
async def test_fsyncs_behind_the_loop_acknowledge_nothing_before_it_is_durable(
        tmp_path: Path, planted: bool) -> None:
    """With the fsyncs in a worker (the broker's ThreadSyncer), a follower writes what the
    leader sends at once but answers only when its fsync is done: while both followers'
    fsyncs are held, the entries are in their logs and the write is not acknowledged.
    Planted (regressions.SENDS_BEFORE_FSYNC): the write is acknowledged while held."""
    if planted:
        regressions.reintroduced.add(regressions.SENDS_BEFORE_FSYNC)
    net = Net()
    syncers = {i: HeldSyncer() for i in IDS}
    replicas = [Replica(i, tmp_path, net, syncer=syncers[i]) for i in IDS]
    try:
        leader = await leader_of(replicas)
        await leader.partition.append(encode_batch([(0, None, b"first")]), timeout_s=10)
        followers = [r for r in replicas if r is not leader]
        for f in followers:
            syncers[f.id].held = True
        end = leader.log.log_end_offset
        write = asyncio.ensure_future(
            leader.partition.append(encode_batch([(0, None, b"second")]), timeout_s=20))
        await wait_until(lambda: all(f.log.log_end_offset > end for f in followers))
        await wait_until(lambda: all(syncers[f.id].waiting for f in followers))
        if planted:
            await asyncio.wait_for(write, 10)  # the planted bug shows
            return
        assert not write.done(), "acknowledged before any follower's fsync"
        assert leader.partition.high_watermark <= end
        syncers[followers[0].id].release()
        await asyncio.wait_for(write, 10)
        assert values(leader) == [b"first", b"second"]
    finally:
        regressions.reintroduced.clear()
        for s in syncers.values():
            s.release()
        for r in replicas:
            await r.crash()


@pytest.mark.timeout(60)
async def test_a_failed_fsync_behind_the_loop_is_retried_and_the_follower_catches_up(
        tmp_path: Path) -> None:
    """A follower whose fsyncs fail (its written entries not durable) sends nothing for
    them, writes them again from the next Ready on, and catches up once its disk works."""
    net = Net()
    syncers = {i: HeldSyncer() for i in IDS}
    replicas = [Replica(i, tmp_path, net, syncer=syncers[i]) for i in IDS]
    try:
        leader = await leader_of(replicas)
        sick = next(r for r in replicas if r is not leader)
        syncers[sick.id].fail = 5
        for n in range(10):
            await leader.partition.append(encode_batch([(n, None, b"v%d" % n)]), timeout_s=10)
        expected = [b"v%d" % n for n in range(10)]
        assert values(leader) == expected
        await wait_until(lambda: syncers[sick.id].fail == 0)
        await wait_until(lambda: sick.partition.high_watermark == leader.partition.high_watermark
                         and sick.log.log_end_offset == leader.log.log_end_offset)
        assert values(sick) == expected
    finally:
        for r in replicas:
            await r.crash()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("planted", [False, True], ids=["fixed", "pending-without-term"])
async def test_a_deposed_leader_does_not_acknowledge_a_write_its_successor_replaced(
        tmp_path: Path, planted: bool) -> None:
    """A leader's write is in its log (its fsync held) when the others elect a new leader,
    whose entry takes the write's offset and commits. The deposed leader learns both in
    one Ready, with a high watermark past that offset: the write must fail (NOT_LEADER),
    not be acknowledged. Planted (regressions.PENDING_WITHOUT_TERM): it is acknowledged."""
    if planted:
        regressions.reintroduced.add(regressions.PENDING_WITHOUT_TERM)
    net = Net()
    syncers = {i: HeldSyncer() for i in IDS}
    replicas = [Replica(i, tmp_path, net, syncer=syncers[i]) for i in IDS]
    try:
        old = await leader_of(replicas)
        await old.partition.append(encode_batch([(0, None, b"first")]), timeout_s=10)
        offset = old.log.log_end_offset
        net.rewrite = lambda m: None if m.from_id == old.id else m  # the old leader is mute
        syncers[old.id].held = True
        write = asyncio.ensure_future(
            old.partition.append(encode_batch([(0, None, b"lost")]), timeout_s=30))
        await wait_until(lambda: old.log.log_end_offset > offset)
        others = [r for r in replicas if r is not old]
        first = await leader_of(others, timeout=20)
        await wait_until(lambda: first.partition.high_watermark > offset)
        # A second successor's first message to the old leader carries a commit past the
        # write's offset (the first one's carried its commit from before its own entry).
        second = next(r for r in others if r is not first)
        first.node.transfer_leadership(second.id)
        first.host.schedule(GROUP)
        await wait_until(lambda: second.node.is_leader())
        await wait_until(lambda: old.node.term == second.node.term
                         and old.node.log.committed >= offset)
        new = second
        syncers[old.id].release()
        if planted:
            await asyncio.wait_for(write, 10)  # acknowledged, yet not in the log
            assert b"lost" not in values(new)
            return
        with pytest.raises(BrokerError) as caught:
            await asyncio.wait_for(write, 10)
        assert caught.value.reason == "NOT_LEADER"
        assert b"lost" not in values(new)
    finally:
        regressions.reintroduced.clear()
        net.rewrite = lambda m: m
        for s in syncers.values():
            s.release()
        for r in replicas:
            await r.crash()
