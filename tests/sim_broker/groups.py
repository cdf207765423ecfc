"""Consumer groups in the whole-broker simulation: the real GroupCoordinator on every
broker, and group members that join, consume what they are assigned, commit, let go of
revoked partitions, leave and come back.

A member reaches the coordinator as the gRPC client does (FindCoordinator at any broker,
then a Membership stream and unary commits at the broker named). The stream is modelled
as calls on one broker life: each poll heartbeats and takes what the coordinator queued
(a poll that gets no answer is a broken stream: the member joins again; the broker side
notices the broken stream a keepalive later, as gRPC's does, and runs the servicer's
``stream_closed``)."""

from __future__ import annotations

import asyncio
import contextvars
from typing import TYPE_CHECKING, Any

from odradek.broker import clock
from odradek.broker.errors import BrokerError, Reason
from odradek.broker.groups.channel import MemberChannel
from odradek.broker.groups.coordinator import OFFSETS_TOPIC
from odradek.broker.groups.records import GroupKey, GroupValue, OffsetKey, OffsetValue, decode
from odradek.broker.groups.state import JoinRequest
from odradek.broker.groups.types import (
    Assignment,
    CommittedOffset,
    Joined,
    MemberMessage,
    OffsetCommit,
)
from tests.sim_broker.broker import committed_records
from tests.sim_broker.errors import make_error
from tests.sim_broker.history import ACKED_COMMIT_LOST, GROUP_GENERATION_WENT_BACK, TP
from tests.sim_broker.loop import OWNER
from tests.sim_broker.net import KEEPALIVE_S, CallTimeout
from tests.sim_broker.workload import REQUEST_TIMEOUT_S, Client, fetch

if TYPE_CHECKING:
    from tests.sim_broker.broker import SimBroker
    from tests.sim_broker.world import World

GROUP = "g"
SESSION_TIMEOUT_MS = 3_000
POLL_WAIT_S = 0.2
COMMIT_EVERY_S = 0.5


def on_broker_later(broker: SimBroker, delay_s: float, fn: Any) -> None:
    """Runs fn as the broker's work after a delay, if that life of it is still there."""
    proc = broker.proc
    ctx = contextvars.copy_context()
    ctx.run(OWNER.set, proc)
    broker.world.loop.call_later(delay_s, fn, context=ctx)


class GroupMember(Client):
    """One consumer of group GROUP subscribed to the seed's first topics."""

    def __init__(self, world: World, index: int, topics: list[str]) -> None:
        super().__init__(world, f"c{index}")
        self.topics = topics
        self.member_id = ""
        self.generation = -1
        self.assigned: set[TP] = set()
        self.positions: dict[TP, int] = {}
        self.active = True  # False while it has left the group (churn)
        self.settled_at = 0.0

    async def run(self) -> None:
        while not self.world.stopping:
            coordinator = await self.find_coordinator()
            if coordinator is not None:
                await self.session(coordinator)
            if self.active and self.rng.random() < self.world.p.group_churn \
                    and not self.world.admin_stopping:
                await self.away()
            await self.backoff()

    async def away(self) -> None:
        """Out of the group for a while, then back as a new member (a restarted
        consumer without a static id)."""
        self.active = False
        self.lose_partitions()
        self.member_id = ""
        self.world.note(f"{self.name} away from group")
        await asyncio.sleep(self.rng.uniform(0.5, 4.0))
        self.active = True

    def lose_partitions(self) -> None:
        self.assigned = set()
        self.positions = {}

    async def find_coordinator(self) -> SimBroker | None:
        async def find(b: SimBroker) -> int:
            assert b.cluster is not None and b.groups is not None
            if OFFSETS_TOPIC not in b.cluster.image.topics:
                # The real broker would create the topic (the bootstrap made it): this one
                # has not replayed its metadata yet.
                raise make_error("COORDINATOR_NOT_AVAILABLE", "no offsets topic yet")
            return (await b.groups.find_coordinator(GROUP)).broker_id

        try:
            broker_id = await self.pick().call(self.name, find, REQUEST_TIMEOUT_S)
        except (BrokerError, CallTimeout):
            return None
        return self.world.brokers.get(broker_id)

    async def session(self, coordinator: SimBroker) -> None:
        join = JoinRequest(self.member_id, "", self.name, frozenset(self.topics),
                           SESSION_TIMEOUT_MS, 60_000, "sticky")

        async def do_join(b: SimBroker) -> MemberChannel:
            assert b.groups is not None
            return await b.groups.join(GROUP, join)

        try:
            channel = await coordinator.call(self.name, do_join, REQUEST_TIMEOUT_S)
        except BrokerError as exc:
            self.refused(exc)
            return
        except CallTimeout:
            return  # a stream that may have opened: its session runs out on the broker
        self.world.note(f"{self.name} joined at {coordinator.name}")
        next_commit = clock.monotonic() + COMMIT_EVERY_S
        while not self.world.stopping:
            try:
                items = await coordinator.call(self.name, lambda b: poll(b, channel),
                                               REQUEST_TIMEOUT_S)
            except CallTimeout:
                self.world.note(f"{self.name} lost its stream to {coordinator.name}")
                on_broker_later(coordinator, KEEPALIVE_S, lambda: closed(coordinator, channel))
                return
            for item in items:
                if item is None:
                    return
                if isinstance(item, BrokerError):
                    self.refused(item)
                    return
                if not await self.message(coordinator, channel, item):
                    return
            await self.consume()
            if clock.monotonic() >= next_commit and self.assigned:
                next_commit = clock.monotonic() + COMMIT_EVERY_S
                if not await self.commit(coordinator, self.assigned):
                    return
            if self.active and self.rng.random() < self.world.p.group_churn / 20 \
                    and not self.world.admin_stopping:
                await self.leave(coordinator, channel)
                await self.away()
                return

    def refused(self, error: BrokerError) -> None:
        self.world.history.count(f"group_{error.reason}")
        if error.reason == Reason.UNKNOWN_MEMBER_ID:
            self.member_id = ""
            self.lose_partitions()

    def saw_generation(self, generation: int, what: str) -> None:
        self.world.history.group_generation(self.name, generation, what)
        self.generation = generation

    async def message(self, coordinator: SimBroker, channel: MemberChannel,
                      item: MemberMessage) -> bool:
        if isinstance(item, Joined):
            if self.member_id and item.member_id != self.member_id:
                self.lose_partitions()  # dropped from the group meanwhile: a new member
            self.member_id = item.member_id
            self.saw_generation(item.generation, "joined")
            return True
        a: Assignment = item
        target = set(a.partitions)
        self.saw_generation(a.generation, "assignment")
        revoked = self.assigned - target
        if revoked and not await self.commit(coordinator, revoked):
            return False
        added = target - self.assigned
        self.assigned = target
        for tp in revoked:
            self.positions.pop(tp, None)
        self.world.note(f"{self.name} ({self.member_id}) generation {a.generation} from "
                        f"{coordinator.name}: {sorted(target)}")

        async def ack(b: SimBroker) -> None:
            assert b.groups is not None
            try:
                await b.groups.acknowledge(channel, a.generation)
            except BrokerError as exc:  # as the servicer's reader: the stream ends
                channel.close(exc)

        try:
            await coordinator.call(self.name, ack, REQUEST_TIMEOUT_S)
        except CallTimeout:
            return False
        return not added or await self.start_positions(coordinator, added)

    async def start_positions(self, coordinator: SimBroker, tps: set[TP]) -> bool:
        floor = {tp: self.world.history.acked_commit(tp) for tp in tps}

        async def fetch(b: SimBroker) -> list[CommittedOffset]:
            assert b.groups is not None
            return await b.groups.fetch(GROUP, sorted(tps))

        try:
            committed = await coordinator.call(self.name, fetch, REQUEST_TIMEOUT_S)
        except (BrokerError, CallTimeout):
            return False
        for c in committed:
            tp = (c.topic, c.partition)
            self.world.history.fetched_commit(tp, c.offset, floor.get(tp, -1), coordinator.name)
            self.positions[tp] = max(0, c.offset)
        return True

    async def commit(self, coordinator: SimBroker, tps: set[TP]) -> bool:
        offsets = {tp: self.positions[tp] for tp in sorted(tps) if tp in self.positions}
        if not offsets:
            return True
        commits = [OffsetCommit(t, p, o) for (t, p), o in offsets.items()]
        member_id, generation = self.member_id, self.generation

        async def do_commit(b: SimBroker) -> None:
            assert b.groups is not None
            await b.groups.commit(GROUP, member_id, generation, commits)

        try:
            await coordinator.call(self.name, do_commit, REQUEST_TIMEOUT_S)
        except CallTimeout:
            return False
        except BrokerError as exc:
            self.refused(exc)
            return exc.reason in (Reason.COORDINATOR_NOT_AVAILABLE,)
        for tp, offset in offsets.items():
            self.world.history.committed(tp, offset)
        return True

    async def consume(self) -> None:
        for tp in sorted(self.assigned):
            if tp in self.positions and tp in self.world.partitions:
                next_offset = await fetch(self, tp, self.positions[tp], 16 * 1024)
                if next_offset is not None and tp in self.positions:
                    self.positions[tp] = max(self.positions[tp], next_offset)

    async def leave(self, coordinator: SimBroker, channel: MemberChannel) -> None:
        await self.commit(coordinator, self.assigned)

        async def do_leave(b: SimBroker) -> None:
            assert b.groups is not None
            await b.groups.leave(channel)

        try:
            await coordinator.call(self.name, do_leave, REQUEST_TIMEOUT_S)
        except (BrokerError, CallTimeout):
            pass  # its session runs out instead
        self.world.history.count("group_leaves")


async def poll(b: SimBroker, channel: MemberChannel
               ) -> list[MemberMessage | BrokerError | None]:
    """A heartbeat, then what the coordinator queued for the member (waiting a little
    for the first item, as a stream read would)."""
    assert b.groups is not None
    try:
        b.groups.heartbeat(channel, 0)
    except BrokerError as exc:  # as the servicer's reader: the stream ends with it
        channel.close(exc)
    queue = channel._queue  # the servicer's stream reads this queue item by item
    deadline = clock.monotonic() + POLL_WAIT_S
    while queue.empty() and clock.monotonic() < deadline:
        await asyncio.sleep(0.05)
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def closed(b: SimBroker, channel: MemberChannel) -> None:
    if b.groups is not None:
        b.groups.stream_closed(channel)


def group_settled(members: list[GroupMember], partitions: set[TP]) -> str | None:
    """None when the active members' assignments split the partitions exactly, every
    member holding some when there are enough; else what is wrong."""
    active = [m for m in members if m.active]
    if not active:
        return None
    owners: dict[TP, list[str]] = {}
    for m in active:
        for tp in m.assigned:
            owners.setdefault(tp, []).append(m.name)
    shared = {tp: who for tp, who in owners.items() if len(who) > 1}
    missing = sorted(partitions - set(owners))
    idle = [m.name for m in active if not m.assigned] if len(partitions) >= len(active) else []
    if shared or missing or idle:
        return f"shared {shared}, unassigned {missing}, members without partitions {idle}"
    return None


def check_offsets_log(world: World) -> None:
    """The committed __consumer_offsets log of each partition's leader: per group, the
    generation never goes back from one group record to the next; every acknowledged
    commit is there (the latest record per partition is at least it)."""
    latest: dict[TP, int] = {}
    for broker in world.brokers.values():
        assert broker.cluster is not None
        for (topic, _), partition in broker.cluster.partitions.items():
            if topic != OFFSETS_TOPIC or not partition.node.is_leader():
                continue
            generation = -1
            for record in committed_records(partition):
                key, value = decode(record.key or b"", record.value)
                if isinstance(key, GroupKey) and isinstance(value, GroupValue):
                    if value.generation < generation:
                        world.history.problem(
                            GROUP_GENERATION_WENT_BACK,
                            f"{OFFSETS_TOPIC} on {broker.name}: group {key.group} generation "
                            f"{value.generation} written after {generation}")
                    generation = value.generation
                elif isinstance(key, OffsetKey) and isinstance(value, OffsetValue):
                    latest[(key.topic, key.partition)] = value.offset
    for tp, offset in world.history.group_commits.items():
        if tp in world.partitions and latest.get(tp, -1) < offset:
            world.history.problem(
                ACKED_COMMIT_LOST, f"group {GROUP} committed {offset} for {tp[0]}-{tp[1]} "
                f"(acknowledged); {OFFSETS_TOPIC} ends with {latest.get(tp)}")
