"""Offset resets and lag: which partitions a reset touches, where each goes, and how far
each committed offset is behind its log end (offsets asked of the partitions' leaders)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from odradek.broker.errors import invalid_request
from odradek.broker.groups.assignors import TP
from odradek.broker.groups.lookup import OffsetLookup
from odradek.broker.groups.records import OffsetValue
from odradek.broker.groups.state import Group
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
