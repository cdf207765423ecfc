"""Offset resets and lag: which partitions a reset touches, where each goes, and how far
each committed offset is behind its log end (offsets asked of the partitions' leaders)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from odradek.broker import clock
from odradek.broker.errors import Reason, invalid_request
from odradek.broker.groups.assignors import TP
from odradek.broker.groups.lookup import OffsetLookup
from odradek.broker.groups.records import OffsetValue
from odradek.broker.groups.state import Group, group_error
from odradek.broker.groups.types import OffsetChange, PartitionLag, ResetRequest, ResetTo
from odradek.broker.topics.reads import OffsetSpec

TARGETS = (ResetTo.EARLIEST, ResetTo.LATEST, ResetTo.TIMESTAMP, ResetTo.OFFSET, ResetTo.SHIFT)


def check_target(request: ResetRequest) -> None:
    if request.to not in TARGETS:
        raise invalid_request(f"say where to reset to: one of {', '.join(TARGETS)}, got "
                              f"{request.to!r}")


def reset_partitions(group: Group, request: ResetRequest,
                     partition_count: Callable[[str], int]) -> list[TP]:
    if not request.partitions:
        if not group.offsets:
            raise invalid_request(f"group {group.group_id!r} has no committed offsets: "
                                  "name the topics to reset")
        return sorted(group.offsets)
    out: list[TP] = []
    for topic, partitions in request.partitions:
        count = partition_count(topic)
        for p in partitions or range(count):
            if not 0 <= p < count:
                raise invalid_request(f"topic {topic!r} has no partition {p} (it has {count})")
            out.append((topic, p))
    return sorted(set(out))


def offsets_to_delete(group: Group,
                      topics: tuple[tuple[str, tuple[int, ...]], ...]) -> list[TP]:
    """The committed partitions of the topics named (a topic without partitions: all)."""
    if not topics:
        raise invalid_request("name the topics whose offsets to delete")
    wanted = dict(topics)
    return [tp for tp in sorted(group.offsets)
            if tp[0] in wanted and (not wanted[tp[0]] or tp[1] in wanted[tp[0]])]


async def reset_target(lookup: OffsetLookup, tp: TP, request: ResetRequest,
                       previous: OffsetValue | None) -> int:
    if request.to == ResetTo.TIMESTAMP:
        return await lookup.offset(*tp, OffsetSpec.TIMESTAMP, request.value)
    earliest = await lookup.offset(*tp, OffsetSpec.EARLIEST)
    latest = await lookup.offset(*tp, OffsetSpec.LATEST)
    if request.to == ResetTo.EARLIEST:
        return earliest
    if request.to == ResetTo.LATEST:
        return latest
    if request.to == ResetTo.OFFSET:
        target = request.value
    else:
        base = previous.offset if previous is not None else latest
        target = base + request.value
    return min(max(target, earliest), latest)


async def reset_changes(lookup: OffsetLookup, group: Group, tps: list[TP],
                        request: ResetRequest) -> list[OffsetChange]:
    changes = []
    for tp in tps:
        previous = group.offsets.get(tp)
        offset = await reset_target(lookup, tp, request, previous)
        changes.append(OffsetChange(tp[0], tp[1], offset,
                                    -1 if previous is None else previous.offset))
    return changes


async def lag(lookup: OffsetLookup, group: Group) -> list[PartitionLag]:
    owners = {tp: m.member_id for m in group.members.values() for tp in m.owned}
    tps = sorted(set(group.offsets) | set(owners))
    ends = await asyncio.gather(*(lookup.end_offset(*tp) for tp in tps))
    out = []
    for tp, end in zip(tps, ends, strict=True):
        committed = group.offsets.get(tp)
        c = committed.offset if committed is not None else -1
        out.append(PartitionLag(tp[0], tp[1], c, -1 if end is None else end,
                                -1 if end is None or c < 0 else max(0, end - c),
                                owners.get(tp, "")))
    return out


def check_no_foreign(group_id: str, foreign_members: int, what: str) -> None:
    """Refuses to change the offsets of a group whose members speak Kafka's protocol."""
    if foreign_members:
        raise group_error(Reason.NON_EMPTY_GROUP, f"group {group_id!r} has Kafka "
                          f"consumers; its offsets can only be {what} by them", group_id)


def check_empty(group: Group, foreign_members: int, what: str) -> None:
    check_no_foreign(group.group_id, foreign_members, what)
    if group.members:
        raise group_error(
            Reason.NON_EMPTY_GROUP, f"group {group.group_id!r} has {len(group.members)} "
            f"member(s); its offsets can only be {what} when it has none (stop its "
            "consumers and wait for their session timeout)", group.group_id)


async def wait_released(group: Group, wait_s: float, poll_s: float) -> None:
    """Until no member owns a held partition (members that do not let go in time are
    removed by the coordinator's tick, as for any revocation), or wait_s."""
    deadline = clock.monotonic() + wait_s
    while not group.holds_released():
        if clock.monotonic() > deadline:
            raise group_error(
                Reason.REBALANCE_IN_PROGRESS,
                f"the members of group {group.group_id!r} did not let go of the "
                f"partitions to reset within {wait_s:.0f}s; nothing was reset, "
                "retry", group.group_id)
        await asyncio.sleep(poll_s)
