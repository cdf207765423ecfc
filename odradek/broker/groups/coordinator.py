"""The group coordinator of one broker: it serves the groups whose partition of
__consumer_offsets this broker leads.

Every change (membership, assignment, committed offsets, deletes as tombstones) is
appended to that partition through Raft with acks=quorum before anyone is told. When this
broker becomes the leader of an internal partition it replays the partition to rebuild its
groups (members get a session timeout to reconnect and keep their partitions meanwhile);
when it stops leading one it drops those groups and closes their members' streams, so
the members find the new coordinator."""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from odradek.broker import clock, regressions
from odradek.broker.cluster import ClusterNode
from odradek.broker.errors import BrokerError, Reason, invalid_request
from odradek.broker.groups.assignors import TP
from odradek.broker.groups.channel import MemberChannel
from odradek.broker.groups.lookup import OffsetLookup
from odradek.broker.groups.records import (
    GroupKey,
    Key,
    OffsetKey,
    OffsetValue,
    Value,
    encode_key,
    encode_value,
)
from odradek.broker.groups.replay import rebuild
from odradek.broker.groups.resets import (
    check_empty,
    check_no_foreign,
    check_target,
    lag,
    offsets_to_delete,
    reset_changes,
    reset_partitions,
    wait_released,
)
from odradek.broker.groups.state import Group, JoinRequest, Member, check_group_id, group_error
from odradek.broker.groups.types import (
    Assignment,
    CommittedOffset,
    CoordinatorInfo,
    Joined,
    OffsetChange,
    OffsetCommit,
    PartitionLag,
    ResetRequest,
)
from odradek.broker.logs import clip
from odradek.broker.peers.forward import AdminForwarder, GrpcAdminForwarder
from odradek.broker.replication.replica import ReplicatedPartition
from odradek.broker.topic_admin import TopicAdmin
from odradek.records import Record, encode_batch, iter_records

log = logging.getLogger("odradek.broker.groups")

OFFSETS_TOPIC = "__consumer_offsets"
LOAD_TIMEOUT_S = 30.0
APPEND_TIMEOUT_S = 10.0
READ_CHUNK = 1 << 20


# A reset of a live group waits this long for its members to let go of the partitions.
RESET_WAIT_S = 30.0
RESET_POLL_S = 0.05


@dataclass
class CoordinatorSettings:
    # Partitions of __consumer_offsets when this broker creates it (an existing topic
    # keeps its count: group placement hashes over the actual count).
    offsets_partitions: int = 8
    offsets_replication_factor: int = 3
    tick_s: float = 0.1


@dataclass
class Shard:
    """The groups of one internal partition this broker leads."""
    index: int
    term: int
    partition: ReplicatedPartition
    ready: bool = False
    groups: dict[str, Group] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, group_id: str) -> asyncio.Lock:
        return self.locks.setdefault(group_id, asyncio.Lock())


def partition_for(group_id: str, partitions: int) -> int:
    return zlib.crc32(group_id.encode()) % partitions


class GroupCoordinator:
    def __init__(self, cluster: ClusterNode, admin: TopicAdmin,
                 settings: CoordinatorSettings | None = None,
                 forwarder: AdminForwarder | None = None) -> None:
        self.cluster = cluster
        self.admin = admin
        # Creates the offsets topic through the controller when this broker is not it.
        self.forwarder: AdminForwarder = forwarder or GrpcAdminForwarder(cluster.channels)
        self.settings = settings or CoordinatorSettings()
        self.lookup = OffsetLookup(cluster, local=admin)
        self._shards: dict[int, Shard] = {}
        self._channels: dict[tuple[str, str], MemberChannel] = {}
        self._partitions_seen: dict[str, dict[str, int]] = {}
        self._create_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        # A group's Kafka classic members (groups/classic.py): one protocol at a time.
        self.foreign_members: Callable[[str], int] = lambda _group: 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._spawn(self._watch_loop())
        self._spawn(self._end_offsets_loop())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for index in list(self._shards):
            self._unload(index)

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def groups(self) -> list[Group]:
        """Every group this broker coordinates now."""
        return [g for s in self._shards.values() if s.ready for g in s.groups.values()]

    # ------------------------------------------------------------- coordinator
    async def find_coordinator(self, group_id: str) -> CoordinatorInfo:
        check_group_id(group_id)
        await self._ensure_topic()
        topic = self.cluster.image.topics[OFFSETS_TOPIC]
        index = partition_for(group_id, len(topic.partitions))
        leader = topic.partitions[index].leader
        local = self.cluster.partitions.get((OFFSETS_TOPIC, index))
        if local is not None and not local.closed and local.leader is not None:
            leader = local.leader  # a replica learns of an election before the image does
        address = self.cluster.address_of(leader if leader >= 0 else None)
        if address is None:
            raise BrokerError(Reason.COORDINATOR_NOT_AVAILABLE,
                              f"partition {index} of {OFFSETS_TOPIC} has no leader right now; "
                              "retry shortly", {"group": group_id})
        return CoordinatorInfo(leader, address, index)

    async def _ensure_topic(self) -> None:
        if OFFSETS_TOPIC in self.cluster.image.topics:
            return
        async with self._create_lock:
            if OFFSETS_TOPIC in self.cluster.image.topics:
                return
            s = self.settings
            # Created once with its final replication factor: wait (the client retries)
            # until as many brokers as there are metadata voters have registered, rather
            # than replicate every group's offsets on fewer brokers for ever.
            rf = min(s.offsets_replication_factor, max(1, len(self.cluster.settings.voters)))
            brokers = len(self.cluster.image.available_brokers())
            if brokers < rf:
                raise BrokerError(Reason.COORDINATOR_NOT_AVAILABLE,
                    f"{OFFSETS_TOPIC} needs {rf} brokers and {brokers} are registered; "
                    "retry shortly")
            configs = {"cleanup.policy": "compact"}
            try:
                if self.cluster.is_controller():
                    await self.admin.create(OFFSETS_TOPIC, s.offsets_partitions, rf, configs,
                                            False)
                else:
                    await self.forwarder.create_topic(self.admin.controller_address(),
                                                      OFFSETS_TOPIC, s.offsets_partitions, rf,
                                                      configs)
            except BrokerError as exc:
                if exc.reason != "TOPIC_ALREADY_EXISTS":
                    raise
            log.info("created %s with %d partitions, replication factor %d",
                     OFFSETS_TOPIC, s.offsets_partitions, rf)
        await self.cluster.wait_for(lambda img: OFFSETS_TOPIC in img.topics, 10)

    def shard_of(self, group_id: str) -> Shard:
        check_group_id(group_id)
        topic = self.cluster.image.topics.get(OFFSETS_TOPIC)
        if topic is None:
            raise self._not_coordinator(group_id, None)
        index = partition_for(group_id, len(topic.partitions))
        shard = self._shards.get(index)
        if shard is None or not shard.partition.node.is_leader():
            leader = topic.partitions[index].leader
            raise self._not_coordinator(group_id, leader if leader >= 0 else None)
        # Leading again in a later term (the watch loop has not reloaded yet): the groups
        # in memory are those of the earlier term; another coordinator may have changed
        # them in between.
        if not shard.ready or shard.partition.node.term != shard.term:
            raise BrokerError(Reason.COORDINATOR_LOAD_IN_PROGRESS,
                              f"broker {self.cluster.id} is loading the groups of partition "
                              f"{index} of {OFFSETS_TOPIC}; retry shortly", {"group": group_id})
        return shard

    def _not_coordinator(self, group_id: str, leader: int | None) -> BrokerError:
        meta = {"group": group_id}
        address = self.cluster.address_of(leader) if leader != self.cluster.id else None
        if address is not None:
            meta["coordinator"] = address
            meta["coordinator_id"] = str(leader)
        return BrokerError(Reason.NOT_COORDINATOR,
                           f"broker {self.cluster.id} is not the coordinator of group "
                           f"{group_id!r}" + (f"; it is at {address}" if address else ""), meta)

    # ------------------------------------------------------- loading, unloading
    async def _watch_loop(self) -> None:
        while True:
            try:
                self._watch()
                await self._tick()
            except Exception:
                log.exception("group coordinator tick failed")
            await asyncio.sleep(self.settings.tick_s)

    def _watch(self) -> None:
        topic = self.cluster.image.topics.get(OFFSETS_TOPIC)
        count = len(topic.partitions) if topic is not None else 0
        for index in list(self._shards):
            shard = self._shards[index]
            node = shard.partition.node
            if index >= count or shard.partition.closed or not node.is_leader() \
                    or node.term != shard.term:
                self._unload(index)
        for index in range(count):
            partition = self.cluster.partitions.get((OFFSETS_TOPIC, index))
            if partition is None or partition.closed or not partition.node.is_leader():
                continue
            if index not in self._shards:
                shard = Shard(index, partition.node.term, partition)
                self._shards[index] = shard
                self._spawn(self._load(shard))

    async def _load(self, shard: Shard) -> None:
        p = shard.partition
        deadline = clock.monotonic() + LOAD_TIMEOUT_S
        # A new leader's high watermark reaches its log end once an entry of its own term
        # commits: from then on the log holds every acknowledged group change.
        while p.high_watermark < p.log.log_end_offset:
            if self._shards.get(shard.index) is not shard:
                return
            if clock.monotonic() > deadline:  # no quorum: the watch loop tries again
                log.warning("%s-%d: could not load its groups within %.0fs", OFFSETS_TOPIC,
                            shard.index, LOAD_TIMEOUT_S)
                self._unload(shard.index)
                return
            await p.wait_for_append(0.1)
        if self._shards.get(shard.index) is not shard:
            return
        offset, end = p.log.log_start_offset, p.high_watermark
        records: list[Record] = []
        while offset < end:
            result = p.log.read(offset, READ_CHUNK, max_offset=end)
            if not result.data:
                break
            records.extend(iter_records(result.data, verify=False))
            offset = result.next_offset
        shard.groups = rebuild(records, clock.monotonic(), clock.time_ms())
        shard.ready = True
        log.info("coordinating %d group(s) of %s-%d (term %d)", len(shard.groups),
                 OFFSETS_TOPIC, shard.index, shard.term)

    def _unload(self, index: int) -> None:
        shard = self._shards.pop(index)
        for group_id in shard.groups:
            for key in [k for k in self._channels if k[0] == group_id]:
                self._channels.pop(key).close(self._not_coordinator(group_id, None))
            self._partitions_seen.pop(group_id, None)
        log.info("no longer coordinating the groups of %s-%d", OFFSETS_TOPIC, index)

    # -------------------------------------------------------------- persistence
    async def _persist(self, shard: Shard, items: list[tuple[Key, Value | None]]) -> None:
        if not items:
            return
        now_ms = clock.time_ms()
        batch = encode_batch([(now_ms, encode_key(k), None if v is None else encode_value(v))
                              for k, v in items])
        if self._shards.get(shard.index) is not shard:
            raise self._not_coordinator(items[0][0].group, None)
        try:
            quorum = regressions.GROUP_CHANGES_WITHOUT_QUORUM not in regressions.reintroduced
            await shard.partition.append(batch, quorum=quorum, timeout_s=APPEND_TIMEOUT_S)
        except BrokerError as exc:
            # The groups in memory have moved past what the log holds (a generation, an
            # assignment): drop them, so that nobody is answered from them, and load
            # again from the log if this broker still leads.
            if self._shards.get(shard.index) is shard:
                self._unload(shard.index)
            raise BrokerError(Reason.COORDINATOR_NOT_AVAILABLE,
                              f"the group change could not be written: {exc.message}",
                              {"group": items[0][0].group}) from exc

    # --------------------------------------------------------------- membership
    def _partitions(self, group: Group) -> dict[str, int]:
        topics = self.cluster.image.topics
        wanted = {t for m in group.members.values() for t in m.topics}
        return {t: len(topics[t].partitions) for t in sorted(wanted) if t in topics}

    async def settle(self, shard: Shard, group: Group, membership_changed: bool) -> None:
        """Reassigns, persists, then pushes the changed assignments. Under the group lock."""
        partitions = self._partitions(group)
        self._partitions_seen[group.group_id] = partitions
        changes = group.reconcile(partitions, clock.monotonic())
        if changes or membership_changed:
            await self._persist(shard, [(GroupKey(group.group_id), group.to_value())])
        for member_id in changes:
            self._push(group, group.members[member_id])

    def _push(self, group: Group, member: Member) -> None:
        channel = self._channels.get((group.group_id, member.member_id))
        if channel is not None:
            channel.send(Assignment(member.sent_generation, frozenset(member.assigned)))

    async def join(self, group_id: str, request: JoinRequest) -> MemberChannel:
        shard = self.shard_of(group_id)
        if not request.topics:
            raise invalid_request("a member must subscribe to at least one topic")
        if self.foreign_members(group_id):
            raise group_error(Reason.INCONSISTENT_GROUP_PROTOCOL, f"group {group_id!r} has "
                              "Kafka classic members", group_id)
        async with shard.lock(group_id):
            group = shard.groups.get(group_id) or Group(group_id)
            previous = group.members.get(request.member_id) or next(
                (m for m in group.members.values()
                 if request.instance_id and m.instance_id == request.instance_id), None)
            # A coordinator not sure it still leads (just resumed, cut off) writes even an
            # unchanged group: only a quorum write proves that its state is the current
            # one, and a deposed coordinator would answer with a generation others left.
            changed = previous is None or previous.disconnected_ms != 0 \
                or not shard.partition.leadership_confirmed()
            member, _ = group.join(request, clock.monotonic())
            shard.groups[group.group_id] = group
            key = (group.group_id, member.member_id)
            old = self._channels.pop(key, None)
            if old is not None:
                old.close(group_error(
                    Reason.FENCED_INSTANCE_ID, f"member {member.member_id!r} of group "
                    f"{group.group_id!r} connected again elsewhere", group.group_id))
            await self.settle(shard, group, changed)
            # Registered only now, so that Joined goes out before the assignment.
            channel = MemberChannel(group.group_id, member.member_id)
            self._channels[key] = channel
            heartbeat_ms = max(100, min(member.session_timeout_ms // 3, 3000))
            channel.send(Joined(member.member_id, group.generation, heartbeat_ms))
            if member.sent_generation >= 0:  # a member never assigned has nothing to resume
                self._push(group, member)
        return channel

    def _member(self, channel: MemberChannel) -> tuple[Shard, Group]:
        shard = self.shard_of(channel.group_id)
        group = shard.groups.get(channel.group_id)
        if group is None or self._channels.get((channel.group_id, channel.member_id)) \
                is not channel:
            raise group_error(
                Reason.UNKNOWN_MEMBER_ID, f"member {channel.member_id!r} is no longer "
                              f"in group {channel.group_id!r}", channel.group_id)
        return shard, group

    def heartbeat(self, channel: MemberChannel, ms_since_poll: int) -> None:
        _, group = self._member(channel)
        group.heartbeat(channel.member_id, ms_since_poll, clock.monotonic())

    async def acknowledge(self, channel: MemberChannel, generation: int) -> None:
        shard, group = self._member(channel)
        async with shard.lock(group.group_id):
            group.heartbeat(channel.member_id, 0, clock.monotonic())
            if group.acknowledge(channel.member_id, generation):
                await self.settle(shard, group, True)

    async def update_subscription(self, channel: MemberChannel, topics: list[str]) -> None:
        if not topics:
            raise invalid_request("a member must subscribe to at least one topic")
        shard, group = self._member(channel)
        async with shard.lock(group.group_id):
            group.require(channel.member_id).topics = frozenset(topics)
            await self.settle(shard, group, True)

    async def leave(self, channel: MemberChannel) -> None:
        shard, group = self._member(channel)
        async with shard.lock(group.group_id):
            self._channels.pop((group.group_id, channel.member_id), None)
            if group.remove(channel.member_id):
                await self.settle(shard, group, True)
        channel.close()

    def stream_closed(self, channel: MemberChannel) -> None:
        """The member's stream ended without a leave: it has a session timeout to return.
        When it broke is persisted, so that a new coordinator counts from then."""
        key = (channel.group_id, channel.member_id)
        if self._channels.get(key) is not channel:
            return
        del self._channels[key]
        self._spawn(self._record_disconnect(channel))

    async def _record_disconnect(self, channel: MemberChannel) -> None:
        try:
            shard = self.shard_of(channel.group_id)
        except BrokerError:
            return  # not coordinating any more: the new coordinator starts its own clock
        group = shard.groups.get(channel.group_id)
        if group is None:
            return
        async with shard.lock(group.group_id):
            if (group.group_id, channel.member_id) in self._channels:
                return  # it came back meanwhile
            if group.disconnected(channel.member_id, clock.monotonic(), clock.time_ms()):
                try:
                    await self._persist(shard, [(GroupKey(group.group_id), group.to_value())])
                except BrokerError as exc:
                    log.warning("group %s: %s", group.group_id, exc.message)

    async def _tick(self) -> None:
        """Removes expired members and follows topics' partition counts."""
        now = clock.monotonic()
        for shard in list(self._shards.values()):
            if not shard.ready:
                continue
            for group in list(shard.groups.values()):
                expired = group.expired(now)
                grown = bool(group.members) and \
                    self._partitions(group) != self._partitions_seen.get(group.group_id)
                if not expired and not grown:
                    continue
                async with shard.lock(group.group_id):
                    for member_id, why in group.expired(clock.monotonic()):
                        group.remove(member_id)
                        log.info("group %s: member %s removed: %s", group.group_id,
                                 clip(member_id), why)
                        channel = self._channels.pop((group.group_id, member_id), None)
                        if channel is not None:
                            channel.close(group_error(
                                Reason.UNKNOWN_MEMBER_ID, f"member {member_id!r} was removed from "
                                f"group {group.group_id!r}: {why}", group.group_id))
                    try:
                        await self.settle(shard, group, bool(expired))
                    except BrokerError as exc:
                        log.warning("group %s: %s", group.group_id, exc.message)

    # ------------------------------------------------------------------ offsets
    async def commit(self, group_id: str, member_id: str, generation: int,
                     offsets: list[OffsetCommit], fenced_by_classic: bool = False) -> None:
        """member_id empty: a commit from outside the group protocol (an empty group), or
        one the classic protocol has fenced already (fenced_by_classic)."""
        shard = self.shard_of(group_id)
        if not member_id and not fenced_by_classic:
            check_no_foreign(group_id, self.foreign_members(group_id), "committed")
        items: list[tuple[TP, OffsetValue]] = []
        now_ms = clock.time_ms()
        for o in offsets:
            if not o.topic or o.partition < 0 or o.offset < 0:
                raise invalid_request(
                    f"bad commit for {o.topic!r} partition {o.partition}: topic must be set, "
                    "partition and offset must not be negative")
            items.append(((o.topic, o.partition), OffsetValue(o.offset, o.metadata, now_ms)))
        if not items:
            return
        async with shard.lock(group_id):
            group = shard.groups.get(group_id) or Group(group_id)
            group.check_commit(member_id, generation, [tp for tp, _ in items])
            await self._write_offsets(shard, group, items)

    async def _write_offsets(self, shard: Shard, group: Group,
                             items: list[tuple[TP, OffsetValue]]) -> None:
        await self._persist(shard, [(OffsetKey(group.group_id, t, p), v) for (t, p), v in items])
        shard.groups[group.group_id] = group
        group.offsets.update(items)

    async def fetch(self, group_id: str, tps: list[TP]) -> list[CommittedOffset]:
        """The committed offsets of tps (empty: of every partition with one)."""
        shard = self.shard_of(group_id)
        group = shard.groups.get(group_id)
        if group is not None and not shard.partition.leadership_confirmed():
            # As for a join: committed offsets read from a deposed coordinator's memory
            # may be older than ones acknowledged since by the new one.
            async with shard.lock(group_id):
                await self._persist(shard, [(GroupKey(group.group_id), group.to_value())])
        offsets = group.offsets if group is not None else {}
        out = []
        for tp in tps or sorted(offsets):
            value = offsets.get(tp)
            out.append(CommittedOffset(
                tp[0], tp[1], -1 if value is None else value.offset,
                "" if value is None else value.metadata,
                -1 if value is None else value.timestamp_ms))
        return out

    def protocol_members(self, group_id: str) -> int:
        """Members of Odradek's own protocol in the group; NOT_COORDINATOR when this broker
        does not coordinate it (the classic protocol's groups, groups/classic.py, ask)."""
        group = self.shard_of(group_id).groups.get(group_id)
        return len(group.members) if group is not None else 0

    # -------------------------------------------------------------------- admin
    def describe_group(self, group_id: str) -> Group:
        group = self.shard_of(group_id).groups.get(group_id)
        if group is None:
            raise group_error(Reason.GROUP_ID_NOT_FOUND, f"group {group_id!r} does not exist",
                              group_id)
        return group

    async def delete(self, group_id: str) -> None:
        shard = self.shard_of(group_id)
        async with shard.lock(group_id):
            group = self.describe_group(group_id)
            check_empty(group, self.foreign_members(group_id), "deleted")
            tombstones: list[tuple[Key, Value | None]] = [
                (OffsetKey(group_id, t, p), None) for t, p in sorted(group.offsets)]
            await self._persist(shard, [*tombstones, (GroupKey(group_id), None)])
            shard.groups.pop(group_id, None)
            self._partitions_seen.pop(group_id, None)

    async def delete_offsets(self, group_id: str, topics: tuple[tuple[str, tuple[int, ...]],
                                                                ...]) -> list[CommittedOffset]:
        """Forgets committed offsets of topics; the group stays (Kafka's OffsetDelete)."""
        shard = self.shard_of(group_id)
        async with shard.lock(group_id):
            group = self.describe_group(group_id)
            check_empty(group, self.foreign_members(group_id), "deleted")
            gone = offsets_to_delete(group, topics)
            await self._persist(shard, [(OffsetKey(group_id, t, p), None) for t, p in gone])
            values = [group.offsets.pop(tp) for tp in gone]
        return [CommittedOffset(t, p, v.offset, v.metadata, v.timestamp_ms)
                for (t, p), v in zip(gone, values, strict=True)]

    async def reset(self, request: ResetRequest,
                    authorize: Callable[[list[str]], None] = lambda _: None,
                    ) -> list[OffsetChange]:
        """Moves the group's committed offsets. On a group with members the partitions
        are first taken from them (their consumers commit and let go, as in any
        revocation), the offsets are written once no member owns one, and the partitions
        are assigned again: the members go on from the new offsets. Kafka requires an
        empty group for this."""
        group_id = request.group_id
        shard = self.shard_of(group_id)
        check_target(request)
        check_no_foreign(group_id, self.foreign_members(group_id), "reset")
        async with shard.lock(group_id):
            group = shard.groups.get(group_id) or Group(group_id)
            tps = reset_partitions(group, request, self.lookup.partition_count)
            # Every topic it touches, also those found from the committed offsets when the
            # request names none: a reset needs read on each (as Kafka's).
            authorize(sorted({t for t, _ in tps}))
            if request.dry_run:
                return await reset_changes(self.lookup, group, tps, request)
            live = bool(group.members)
            if live:
                group.held |= set(tps)
                await self.settle(shard, group, False)
        if live:
            try:
                await wait_released(group, RESET_WAIT_S, RESET_POLL_S)
            except BaseException:
                async with shard.lock(group_id):
                    group.held -= set(tps)
                    if shard.groups.get(group_id) is group:
                        await self.settle(shard, group, False)
                raise
        async with shard.lock(group_id):
            try:
                if shard.groups.get(group_id, group) is not group:
                    raise group_error(Reason.REBALANCE_IN_PROGRESS,
                                      f"group {group_id!r} moved to another coordinator "
                                      "during the reset; retry", group_id)
                # The members' last commits (made as they let go) count as "previous".
                changes = await reset_changes(self.lookup, group, tps, request)
                now_ms = clock.time_ms()
                await self._write_offsets(shard, group, [
                    ((c.topic, c.partition), OffsetValue(c.offset, "", now_ms))
                    for c in changes])
            finally:
                group.held -= set(tps)
                if live and shard.groups.get(group_id) is group:
                    await self.settle(shard, group, False)
        return changes

    async def lag(self, group: Group) -> list[PartitionLag]:
        return await lag(self.lookup, group)

    async def _end_offsets_loop(self) -> None:
        """Keeps the log end offsets of committed partitions fresh for the lag gauges."""
        while True:
            await asyncio.sleep(10)
            tps = {tp for g in self.groups() for tp in g.offsets}
            await asyncio.gather(*(self.lookup.end_offset(*tp) for tp in sorted(tps)))
