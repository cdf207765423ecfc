"""Rebuilds the groups of one __consumer_offsets partition from its records (the latest
record per key wins; a tombstone deletes). Pure: the caller reads the log."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from odradek.broker.groups.records import (
    GroupKey,
    GroupValue,
    Key,
    OffsetKey,
    OffsetValue,
    Value,
    decode,
)
from odradek.broker.groups.state import Group
from odradek.records import Record

log = logging.getLogger("odradek.broker.groups")


def rebuild(records: Iterable[Record], now: float, wall_ms: int) -> dict[str, Group]:
    """`now` is the monotonic clock members' sessions count from, `wall_ms` the wall
    clock their recorded disconnections are compared with."""
    values: dict[Key, Value | None] = {}
    for record in records:
        try:
            key, value = decode(record.key or b"", record.value)
        except ValueError as exc:  # written by a newer version: skip, do not fail
            log.warning("__consumer_offsets offset %d: %s", record.offset, exc)
            continue
        values[key] = value
    groups: dict[str, Group] = {}
    for key, value in values.items():
        if isinstance(key, GroupKey) and isinstance(value, GroupValue):
            offsets = groups[key.group].offsets if key.group in groups else {}
            group = Group.from_value(key.group, value, now, wall_ms)
            group.offsets = offsets
            groups[key.group] = group
        elif isinstance(key, OffsetKey) and isinstance(value, OffsetValue):
            group = groups.setdefault(key.group, Group(key.group))
            group.offsets[(key.topic, key.partition)] = value
    return groups
