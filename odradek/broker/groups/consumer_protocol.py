"""Kafka's consumer group protocol (KIP-848) over Odradek's own groups: the coordinator
assigns, as it does for gRPC members, and a member learns its assignment from the
answer to its next heartbeat instead of from a stream. A member's epoch is the
generation of the last assignment it was sent; reporting, at that epoch, that it no
longer owns what the assignment took away is its acknowledgement.

`heartbeat` applies the rules below under the group's lock and persists what changed
through the coordinator, as the coordinator does for its gRPC members."""

from __future__ import annotations

from odradek.broker import clock
from odradek.broker.errors import Reason
from odradek.broker.groups.assignors import ASSIGNORS, DEFAULT_STRATEGY
from odradek.broker.groups.coordinator import GroupCoordinator
from odradek.broker.groups.state import Group, JoinRequest, Member, group_error
from odradek.broker.groups.types import (
    JOIN_EPOCH,
    LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
    ConsumerHeartbeat,
    ConsumerHeartbeatAnswer,
)

# Kafka's group.consumer.session.timeout.ms: on this protocol the broker, not the
# client, sets it.
SESSION_TIMEOUT_MS = 45_000
# Short, because a member learns of a new assignment only from a heartbeat's answer.
HEARTBEAT_INTERVAL_MS = 1_000
DEFAULT_REBALANCE_TIMEOUT_MS = 300_000
# Kafka's server-side assignors, as Odradek's.
SERVER_ASSIGNORS = {"uniform": "sticky", "range": "range"}


def strategy_for(assignor: str | None, group: Group) -> str:
    if assignor is None:
        return group.strategy if group.members else DEFAULT_STRATEGY
    strategy = SERVER_ASSIGNORS.get(assignor, assignor)
    if strategy not in ASSIGNORS:
        raise group_error(Reason.INCONSISTENT_GROUP_PROTOCOL,
                          f"unknown server assignor {assignor!r}; use one of "
                          f"{', '.join(sorted(SERVER_ASSIGNORS))}", group.group_id,
                          assignor=assignor)
    return strategy


def join_request(hb: ConsumerHeartbeat, group: Group) -> JoinRequest:
    if hb.topics is None:
        raise group_error(Reason.INVALID_REQUEST, "a joining member must name the topics "
                          "it subscribes to", group.group_id)
    rebalance_ms = hb.rebalance_timeout_ms if hb.rebalance_timeout_ms > 0 \
        else DEFAULT_REBALANCE_TIMEOUT_MS
    return JoinRequest(hb.member_id, hb.instance_id or "", hb.client_id, hb.topics,
                       SESSION_TIMEOUT_MS, rebalance_ms, strategy_for(hb.assignor, group),
                       client_chose_id=True)


def epoch_of(member: Member) -> int:
    """The member epoch a member is told: its assignment's generation, or, for one never
    sent an assignment (it has nothing), one that cannot be mistaken for a join (0)."""
    return member.sent_generation if member.sent_generation > 0 \
        else max(1, member.first_generation)


def check_epoch(hb: ConsumerHeartbeat, member: Member, group_id: str) -> None:
    """An epoch above the member's is one this coordinator never gave it (the member
    heard from a coordinator whose state was lost): it must join again."""
    if hb.member_epoch > epoch_of(member):
        raise group_error(Reason.FENCED_MEMBER,
                          f"member {member.member_id!r} of group {group_id!r} is at epoch "
                          f"{epoch_of(member)}, not {hb.member_epoch}: join again", group_id,
                          member=member.member_id)


def released(hb: ConsumerHeartbeat, member: Member) -> bool:
    """Does this heartbeat acknowledge the member's revocations? Only a report made at the
    current epoch counts: an older one may predate the assignment that revoked."""
    return (hb.owned is not None and hb.member_epoch == epoch_of(member)
            and bool(member.revoking) and not (hb.owned & member.revoking))


def answer(hb: ConsumerHeartbeat, member: Member, joined: bool) -> ConsumerHeartbeatAnswer:
    """The assignment goes out when the member's epoch is behind, on a join, and when
    the member believes it owns something it was not given (it came from another
    coordinator's view): otherwise the member already has it."""
    epoch = epoch_of(member)
    stale = joined or hb.member_epoch != epoch or (
        hb.owned is not None and bool(hb.owned - member.owned))
    return ConsumerHeartbeatAnswer(member.member_id, epoch, HEARTBEAT_INTERVAL_MS,
                                   frozenset(member.assigned) if stale else None)


async def heartbeat(coordinator: GroupCoordinator, group_id: str,
                    hb: ConsumerHeartbeat) -> ConsumerHeartbeatAnswer:
    """Joins, leaves, acknowledges revocations and changes subscriptions of a member that
    has no stream, and answers with its assignment when the member lacks it."""
    shard = coordinator.shard_of(group_id)
    if coordinator.foreign_members(group_id):
        raise group_error(Reason.INCONSISTENT_GROUP_PROTOCOL, f"group {group_id!r} has "
                          "Kafka classic members", group_id)
    async with shard.lock(group_id):
        group = shard.groups.get(group_id) or Group(group_id)
        now = clock.monotonic()
        if hb.member_epoch == JOIN_EPOCH:
            member, _ = group.join(join_request(hb, group), now)
            shard.groups[group_id] = group
            await coordinator.settle(shard, group, True)
            return answer(hb, member, joined=True)
        member = group.require(hb.member_id)
        if hb.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            if hb.member_epoch == STATIC_LEAVE_EPOCH and member.instance_id:
                # It comes back under its instance id within the session timeout.
                group.disconnected(member.member_id, now, clock.time_ms())
            else:
                group.remove(member.member_id)
            await coordinator.settle(shard, group, True)
            return ConsumerHeartbeatAnswer(member.member_id, hb.member_epoch, 0, None)
        check_epoch(hb, member, group_id)
        group.heartbeat(member.member_id, 0, now)
        if hb.rebalance_timeout_ms > 0:
            member.max_poll_interval_ms = hb.rebalance_timeout_ms
        changed = released(hb, member) and \
            group.acknowledge(member.member_id, member.sent_generation)
        if hb.topics is not None and hb.topics != member.topics:
            member.topics = hb.topics
            changed = True
        # As for a gRPC join: only a quorum write proves a just-elected coordinator's
        # state is the current one.
        if changed or not shard.partition.leadership_confirmed():
            await coordinator.settle(shard, group, True)
        return answer(hb, member, joined=False)
