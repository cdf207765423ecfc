"""Groups of the classic Kafka membership protocol (JoinGroup, SyncGroup, Heartbeat,
LeaveGroup): the members send their subscriptions as opaque protocol metadata, the
coordinator picks a protocol all of them support and a leader, hands the leader every
member's metadata, and gives each member the assignment the leader computed.

The coordinator of a classic group is the coordinator of the group id (the leader of its
partition of __consumer_offsets, as for gRPC groups); its committed offsets are written
through GroupCoordinator.commit into the same store. Membership is kept in memory only:
when the coordinator moves, the members are told NOT_COORDINATOR, find the new one, get
UNKNOWN_MEMBER_ID there and join again (committed offsets are not lost)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field

from odradek.broker import clock
from odradek.broker.errors import BrokerError, Reason
from odradek.broker.groups.coordinator import GroupCoordinator
from odradek.broker.groups.state import group_error
from odradek.broker.groups.types import OffsetCommit

log = logging.getLogger("odradek.broker.groups")

MIN_SESSION_TIMEOUT_MS = 1_000
MAX_SESSION_TIMEOUT_MS = 300_000
# A new group waits this long for more members before its first generation (Kafka's
# group.initial.rebalance.delay.ms), so consumers started together form one generation.
INITIAL_REBALANCE_DELAY_S = 0.5
TICK_S = 0.1

EMPTY = "Empty"
PREPARING = "PreparingRebalance"
COMPLETING = "CompletingRebalance"
STABLE = "Stable"


@dataclass(frozen=True)
class JoinResult:
    generation: int
    protocol: str
    leader: str
    member_id: str
    # For the leader: (member id, instance id, metadata of the chosen protocol) of every
    # member; empty for the others.
    members: tuple[tuple[str, str | None, bytes], ...]


@dataclass
class ClassicMember:
    member_id: str
    instance_id: str | None
    client_id: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]
    last_seen: float
    joining: asyncio.Future[JoinResult] | None = None
    syncing: asyncio.Future[bytes] | None = None
    assignment: bytes = b""


@dataclass
class ClassicGroup:
    group_id: str
    state: str = EMPTY
    generation: int = 0
    protocol_type: str = ""
    protocol: str = ""
    leader: str = ""
    members: dict[str, ClassicMember] = field(default_factory=dict)
    rebalance_deadline: float = 0.0

    def require(self, member_id: str) -> ClassicMember:
        member = self.members.get(member_id)
        if member is None:
            raise group_error(Reason.UNKNOWN_MEMBER_ID, f"member {member_id!r} is not in "
                              f"group {self.group_id!r}", self.group_id, member=member_id)
        return member

    def check_generation(self, generation: int) -> None:
        if generation != self.generation:
            raise group_error(Reason.ILLEGAL_GENERATION, f"generation {generation} is not "
                              f"the current one of group {self.group_id!r} "
                              f"({self.generation})", self.group_id)


class ClassicGroups:
    def __init__(self, coordinator: GroupCoordinator) -> None:
        self.coordinator = coordinator
        self.groups: dict[str, ClassicGroup] = {}
        self._task: asyncio.Task[None] | None = None
        coordinator.foreign_members = self.member_count

    def member_count(self, group_id: str) -> int:
        group = self.groups.get(group_id)
        return len(group.members) if group is not None else 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for group in self.groups.values():
            self._fail_waiters(group, BrokerError(Reason.NOT_COORDINATOR, "broker stopping"))

    def _group(self, group_id: str, create: bool = False) -> ClassicGroup:
        """The group if this broker coordinates it now; a group of another broker's term
        is dropped, so that none of its members is answered from stale state."""
        try:
            grpc_members = self.coordinator.protocol_members(group_id)
        except BrokerError:
            stale = self.groups.pop(group_id, None)
            if stale is not None:
                self._fail_waiters(stale, BrokerError(Reason.NOT_COORDINATOR,
                                                      "the coordinator moved"))
            raise
        group = self.groups.get(group_id)
        if (group is None or not group.members) and grpc_members:
            raise group_error(Reason.INCONSISTENT_GROUP_PROTOCOL,
                              f"group {group_id!r} has members of Odradek's own "
                              "protocol; a classic member cannot join it", group_id)
        if group is None:
            if not create:
                raise group_error(Reason.UNKNOWN_MEMBER_ID,
                                  f"group {group_id!r} has no classic members here", group_id)
            group = self.groups[group_id] = ClassicGroup(group_id)
        return group

    # ------------------------------------------------------------------ join
    async def join(self, group_id: str, member_id: str, instance_id: str | None,
                   client_id: str, session_timeout_ms: int, rebalance_timeout_ms: int,
                   protocol_type: str, protocols: tuple[tuple[str, bytes], ...]) -> JoinResult:
        if not MIN_SESSION_TIMEOUT_MS <= session_timeout_ms <= MAX_SESSION_TIMEOUT_MS:
            raise group_error(Reason.INVALID_SESSION_TIMEOUT,
                              f"session timeout {session_timeout_ms} ms is not within "
                              f"{MIN_SESSION_TIMEOUT_MS}..{MAX_SESSION_TIMEOUT_MS}", group_id)
        if not protocols:
            raise group_error(Reason.INCONSISTENT_GROUP_PROTOCOL,
                              "a member must offer at least one protocol", group_id)
        group = self._group(group_id, create=True)
        if group.members and (protocol_type != group.protocol_type or not self._common(
                group, {name for name, _ in protocols})):
            raise group_error(Reason.INCONSISTENT_GROUP_PROTOCOL,
                              f"group {group_id!r} uses protocol type "
                              f"{group.protocol_type!r} with protocols no member offered here",
                              group_id)
        if member_id and member_id not in group.members:
            static = next((m for m in group.members.values()
                           if instance_id and m.instance_id == instance_id), None)
            member_id = group.require(member_id).member_id if static is None \
                else static.member_id
        if not member_id:
            static = next((m for m in group.members.values()
                           if instance_id and m.instance_id == instance_id), None)
            member_id = static.member_id if static is not None else \
                f"{client_id or 'member'}-{uuid.uuid4()}"
        now = clock.monotonic()
        member = group.members.get(member_id)
        if member is None:
            member = ClassicMember(member_id, instance_id, client_id, session_timeout_ms,
                                   rebalance_timeout_ms or session_timeout_ms, protocol_type,
                                   protocols, now)
            group.members[member_id] = member
        else:
            member.protocols, member.last_seen = protocols, now
            member.session_timeout_ms = session_timeout_ms
            member.rebalance_timeout_ms = rebalance_timeout_ms or session_timeout_ms
        if member.joining is not None and not member.joining.done():
            member.joining.cancel()  # a join sent again replaces the one waiting
        member.joining = asyncio.get_running_loop().create_future()
        group.protocol_type = protocol_type
        if group.state != PREPARING:
            self._prepare(group, now, initial=group.state == EMPTY)
        self._maybe_complete_join(group, now)
        return await member.joining

    def _common(self, group: ClassicGroup, offered: set[str]) -> bool:
        for m in group.members.values():
            offered &= {name for name, _ in m.protocols}
        return bool(offered)

    def _prepare(self, group: ClassicGroup, now: float, initial: bool = False) -> None:
        """Starts a rebalance: every member must join again within its rebalance timeout."""
        log.info("group %s: rebalancing (generation %d, %d member(s))", group.group_id,
                 group.generation, len(group.members))
        group.state = PREPARING
        longest = max((m.rebalance_timeout_ms for m in group.members.values()), default=0)
        group.rebalance_deadline = now + (INITIAL_REBALANCE_DELAY_S if initial
                                          else longest / 1000)
        for m in group.members.values():
            if m.syncing is not None and not m.syncing.done():
                m.syncing.set_exception(group_error(
                    Reason.REBALANCE_IN_PROGRESS, "the group is rebalancing", group.group_id))

    def _maybe_complete_join(self, group: ClassicGroup, now: float) -> None:
        if group.state != PREPARING:
            return
        waiting = [m for m in group.members.values()
                   if m.joining is not None and not m.joining.done()]
        everyone = len(waiting) == len(group.members)
        if not (everyone and (group.generation > 0 or now >= group.rebalance_deadline)) \
                and now < group.rebalance_deadline:
            return
        for m in [m for m in group.members.values() if m not in waiting]:
            log.info("group %s: member %s did not join again in time", group.group_id,
                     m.member_id)
            del group.members[m.member_id]
        group.generation += 1
        if not group.members:
            group.state, group.protocol, group.leader = EMPTY, "", ""
            return
        offered = [name for name, _ in waiting[0].protocols]
        common = set(offered)
        for m in waiting:
            common &= {name for name, _ in m.protocols}
        group.protocol = next(name for name in offered if name in common)
        if group.leader not in group.members:
            group.leader = waiting[0].member_id
        group.state = COMPLETING
        log.info("group %s: generation %d, protocol %s, leader %s, %d member(s)",
                 group.group_id, group.generation, group.protocol, group.leader,
                 len(group.members))
        everyone_meta = tuple((m.member_id, m.instance_id, dict(m.protocols)[group.protocol])
                              for m in group.members.values())
        for m in waiting:
            m.last_seen = now
            m.assignment = b""
            assert m.joining is not None
            m.joining.set_result(JoinResult(
                group.generation, group.protocol, group.leader, m.member_id,
                everyone_meta if m.member_id == group.leader else ()))

    # ------------------------------------------------------------------ sync
    async def sync(self, group_id: str, member_id: str, generation: int,
                   assignments: dict[str, bytes]) -> bytes:
        group = self._group(group_id)
        member = group.require(member_id)
        group.check_generation(generation)
        member.last_seen = clock.monotonic()
        if group.state == PREPARING:
            raise group_error(Reason.REBALANCE_IN_PROGRESS, "the group is rebalancing",
                              group_id)
        if group.state == STABLE:
            return member.assignment
        if member_id == group.leader:
            for m in group.members.values():
                m.assignment = assignments.get(m.member_id, b"")
                if m.syncing is not None and not m.syncing.done():
                    m.syncing.set_result(m.assignment)
            group.state = STABLE
            return member.assignment
        member.syncing = asyncio.get_running_loop().create_future()
        return await member.syncing

    # ------------------------------------------------------- heartbeat, leave
    def heartbeat(self, group_id: str, member_id: str, generation: int) -> None:
        group = self._group(group_id)
        member = group.require(member_id)
        member.last_seen = clock.monotonic()
        if group.state == PREPARING:
            raise group_error(Reason.REBALANCE_IN_PROGRESS, "the group is rebalancing",
                              group_id)
        group.check_generation(generation)

    def leave(self, group_id: str, member_id: str) -> None:
        group = self._group(group_id)
        member = group.require(member_id)
        self._remove(group, member, "it left")

    def _remove(self, group: ClassicGroup, member: ClassicMember, why: str) -> None:
        log.info("group %s: member %s removed: %s", group.group_id, member.member_id, why)
        del group.members[member.member_id]
        for waiter in (member.joining, member.syncing):
            if waiter is not None and not waiter.done():
                waiter.set_exception(group_error(Reason.UNKNOWN_MEMBER_ID,
                                                 f"member removed: {why}", group.group_id))
        now = clock.monotonic()
        if not group.members:
            group.state, group.protocol, group.leader = EMPTY, "", ""
            group.generation += 1
        elif group.state != PREPARING:
            self._prepare(group, now)
        self._maybe_complete_join(group, now)

    # --------------------------------------------------------------- offsets
    async def commit(self, group_id: str, member_id: str, generation: int,
                     offsets: list[OffsetCommit]) -> None:
        """A commit with a member id must come from a member of the current generation;
        without one (generation -1) only into a group with no members, as Kafka's."""
        group = self.groups.get(group_id)
        if member_id or generation >= 0:
            group = self._group(group_id)
            group.require(member_id)
            if group.state == PREPARING:
                raise group_error(Reason.REBALANCE_IN_PROGRESS, "the group is rebalancing",
                                  group_id)
            group.check_generation(generation)
        elif group is not None and group.members:
            raise group_error(Reason.UNKNOWN_MEMBER_ID, f"group {group_id!r} has members: "
                              "only they may commit", group_id)
        await self.coordinator.commit(group_id, "", -1, offsets, fenced_by_classic=True)

    def describe(self, group_id: str) -> ClassicGroup | None:
        return self.groups.get(group_id)

    # ----------------------------------------------------------------- timers
    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = clock.monotonic()
            for group in list(self.groups.values()):
                for m in list(group.members.values()):
                    waiting = m.joining is not None and not m.joining.done()
                    if not waiting and now - m.last_seen > m.session_timeout_ms / 1000:
                        self._remove(group, m, "session timeout")
                self._maybe_complete_join(group, now)
                if not group.members and group.state == EMPTY:
                    self.groups.pop(group.group_id, None)

    def _fail_waiters(self, group: ClassicGroup, error: BrokerError) -> None:
        for m in group.members.values():
            for waiter in (m.joining, m.syncing):
                if waiter is not None and not waiter.done():
                    waiter.set_exception(error)
