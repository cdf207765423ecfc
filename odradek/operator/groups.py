"""ConsumerGroup resources, as plain functions: the reset a spec asks for (once per
requestId), the calls that carry it out, and the status from a group description."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class SpecError(ValueError):
    """A reset the brokers could not be asked for."""


@dataclass(frozen=True)
class ResetCall:
    """One Admin.reset_group_offsets call: topics (topic -> partitions, none: all) and
    exactly one target."""

    topics: dict[str, list[int]]
    target: dict[str, Any]


@dataclass(frozen=True)
class GroupSpec:
    group_id: str
    topics: tuple[str, ...]
    request_id: str | None = None
    calls: tuple[ResetCall, ...] = field(default=())


def _timestamp_ms(text: str) -> int:
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SpecError(f"reset.timestamp {text!r} is not an RFC 3339 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return int(when.timestamp() * 1000)


def reset_calls(reset: Mapping[str, Any], default_topics: tuple[str, ...]) -> list[ResetCall]:
    to = reset.get("to")
    items = list(reset.get("topics") or [{"topic": t} for t in default_topics])
    if not items:
        raise SpecError("a reset needs reset.topics or spec.topics")
    if to == "offset" and any(i.get("offsets") for i in items):
        # Explicit offsets: one call per partition (the API takes one target per call).
        calls = []
        for item in items:
            for entry in item.get("offsets") or []:
                calls.append(ResetCall({item["topic"]: [int(entry["partition"])]},
                                       {"to_offset": int(entry["offset"])}))
            if not item.get("offsets"):
                if reset.get("offset") is None:
                    raise SpecError(f"topic {item['topic']}: no offsets and no reset.offset")
                calls.append(ResetCall({item["topic"]: list(item.get("partitions") or [])},
                                       {"to_offset": int(reset["offset"])}))
        return calls
    target: dict[str, Any]
    if to == "earliest":
        target = {"to_earliest": True}
    elif to == "latest":
        target = {"to_latest": True}
    elif to == "timestamp":
        if not reset.get("timestamp"):
            raise SpecError("to=timestamp needs reset.timestamp")
        target = {"to_timestamp_ms": _timestamp_ms(str(reset["timestamp"]))}
    elif to == "offset":
        if reset.get("offset") is None:
            raise SpecError("to=offset needs reset.offset or per-partition offsets")
        target = {"to_offset": int(reset["offset"])}
    else:
        raise SpecError(f"reset.to must be earliest, latest, timestamp or offset, not {to!r}")
    return [ResetCall({i["topic"]: list(i.get("partitions") or []) for i in items}, target)]


def desired(spec: Mapping[str, Any], resource_name: str) -> GroupSpec:
    topics = tuple(spec.get("topics") or ())
    group_id = str(spec.get("groupId") or resource_name)
    reset = spec.get("reset")
    if not reset:
        return GroupSpec(group_id, topics)
    request_id = str(reset.get("requestId") or "")
    if not request_id:
        raise SpecError("reset.requestId is required")
    return GroupSpec(group_id, topics, request_id, tuple(reset_calls(reset, topics)))


def reset_pending(want: GroupSpec, last_reset: Mapping[str, Any] | None) -> bool:
    """A request is carried out once: until it has been applied (a refused one, say while
    the group has members, is tried again at the next resync)."""
    if want.request_id is None:
        return False
    last = last_reset or {}
    return not (last.get("requestId") == want.request_id and last.get("outcome") == "Applied")


def group_status(description: Any | None) -> dict[str, Any]:
    """status fields from a GroupDescription (odradek.v1); None: the group does not exist."""
    if description is None:
        return {"state": "UNKNOWN", "members": 0, "lag": 0, "partitions": []}
    partitions = [{"topic": p.topic, "partition": p.partition,
                   "committedOffset": p.committed_offset, "logEndOffset": p.log_end_offset,
                   "lag": p.lag} for p in description.partitions]
    return {"state": description.state or "UNKNOWN", "members": len(description.members),
            "lag": sum(p["lag"] for p in partitions if p["lag"] > 0),
            "partitions": sorted(partitions, key=lambda p: (p["topic"], p["partition"]))}
