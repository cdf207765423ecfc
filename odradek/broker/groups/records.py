"""The records of the internal topic __consumer_offsets: keys and values as compact JSON.

Two kinds, told apart by the key's first element, so compaction keeps the latest of each:
  ["offset", group, topic, partition] -> {"offset", "metadata", "ts"}  (a committed offset)
  ["group", group] -> {"generation", "strategy", "members": [...]}     (membership)
A record with no value is a tombstone: the offset or the group was deleted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from odradek.broker.groups.assignors import TP


@dataclass(frozen=True)
class OffsetKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True)
class GroupKey:
    group: str


@dataclass(frozen=True)
class OffsetValue:
    offset: int
    metadata: str
    timestamp_ms: int


@dataclass(frozen=True)
class MemberValue:
    member_id: str
    instance_id: str
    client_id: str
    topics: tuple[str, ...]
    session_timeout_ms: int
    max_poll_interval_ms: int
    owned: tuple[TP, ...]
    # Wall-clock ms when the member's stream broke (0: connected), so that a new
    # coordinator does not give a dead member a fresh session timeout.
    disconnected_ms: int = 0
    # The last assignment sent (owned - assigned is being revoked); None: equal to owned.
    assigned: tuple[TP, ...] | None = None


@dataclass(frozen=True)
class GroupValue:
    generation: int
    strategy: str
    members: tuple[MemberValue, ...]


Key = OffsetKey | GroupKey
Value = OffsetValue | GroupValue


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def encode_key(key: Key) -> bytes:
    if isinstance(key, OffsetKey):
        return _dump(["offset", key.group, key.topic, key.partition])
    return _dump(["group", key.group])


def encode_value(value: Value) -> bytes:
    if isinstance(value, OffsetValue):
        return _dump({"offset": value.offset, "metadata": value.metadata,
                      "ts": value.timestamp_ms})
    return _dump({"generation": value.generation, "strategy": value.strategy,
                  "members": [{
                      "id": m.member_id, "instance": m.instance_id, "client": m.client_id,
                      "topics": list(m.topics), "session_ms": m.session_timeout_ms,
                      "poll_ms": m.max_poll_interval_ms,
                      "owned": [[t, p] for t, p in m.owned],
                      "gone_ms": m.disconnected_ms,
                      "assigned": None if m.assigned is None else [[t, p] for t, p in m.assigned]}
                     for m in value.members]})


def decode(key: bytes, value: bytes | None) -> tuple[Key, Value | None]:
    """Raises ValueError for what this version does not understand."""
    try:
        k = json.loads(key)
        v = json.loads(value) if value is not None else None
        if k[0] == "offset" and len(k) == 4:
            okey = OffsetKey(str(k[1]), str(k[2]), int(k[3]))
            if v is None:
                return okey, None
            return okey, OffsetValue(int(v["offset"]), str(v["metadata"]), int(v["ts"]))
        if k[0] == "group" and len(k) == 2:
            gkey = GroupKey(str(k[1]))
            if v is None:
                return gkey, None
            members = tuple(MemberValue(
                str(m["id"]), str(m["instance"]), str(m["client"]),
                tuple(str(t) for t in m["topics"]), int(m["session_ms"]), int(m["poll_ms"]),
                tuple((str(t), int(p)) for t, p in m["owned"]), int(m.get("gone_ms", 0)),
                None if m.get("assigned") is None else
                tuple((str(t), int(p)) for t, p in m["assigned"]))
                for m in v["members"])
            return gkey, GroupValue(int(v["generation"]), str(v["strategy"]), members)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"not a group record: {exc}") from exc
    raise ValueError(f"unknown group record key {key[:80]!r}")
