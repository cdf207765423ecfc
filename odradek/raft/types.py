"""Plain data of the Raft core: entries, messages, persistent and soft state, Ready.

Offsets follow Kafka: the first offset of a partition is 0, and "nothing" is -1. An entry is
one RecordBatch covering ``count`` offsets starting at ``index``; every index the protocol
exchanges (prev_index, match, commit) is the LAST offset of an entry, so ``commit + 1`` is
the high watermark.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

NO_INDEX = -1
"""The last offset of an empty log (and the commit index before anything is committed)."""

ENTRY_OVERHEAD = 16
"""Bytes charged per entry on top of its data when limiting message sizes."""


class EntryKind(enum.IntEnum):
    NORMAL = 0
    NOOP = 1
    """Appended by a new leader; commits the entries of earlier terms."""
    CONFIG = 2
    """A membership change; ``data`` is the complete new ConfigState (encode_config)."""


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    """Base offset of the batch."""
    count: int
    """How many offsets the batch covers (>= 1)."""
    term: int
    data: bytes = b""
    kind: EntryKind = EntryKind.NORMAL

    @property
    def last(self) -> int:
        """The last offset this entry covers."""
        return self.index + self.count - 1

    def size(self) -> int:
        return len(self.data) + ENTRY_OVERHEAD

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "count": self.count,
            "term": self.term,
            "data": self.data,
            "kind": int(self.kind),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entry:
        return cls(d["index"], d["count"], d["term"], bytes(d["data"]), EntryKind(d["kind"]))


@dataclass(frozen=True, slots=True)
class ConfigState:
    """The voters of the group. A node whose own id is absent never campaigns."""

    voters: frozenset[int] = frozenset()

    def encode(self) -> bytes:
        return json.dumps({"voters": sorted(self.voters)}).encode()

    @classmethod
    def decode(cls, data: bytes) -> ConfigState:
        if not data:
            return cls()
        return cls(frozenset(int(v) for v in json.loads(data)["voters"]))



class ConfigChangeType(enum.IntEnum):
    ADD_VOTER = 0
    REMOVE_VOTER = 1


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message of the same Ready is sent."""

    term: int = 0
    vote: int | None = None
    commit: int = NO_INDEX


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int = NO_INDEX
    """Last offset covered by the snapshot (the log starts at index + 1)."""
    term: int = 0
    config: ConfigState = field(default_factory=ConfigState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.meta.index,
            "term": self.meta.term,
            "voters": sorted(self.meta.config.voters),
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Snapshot:
        meta = SnapshotMeta(d["index"], d["term"], ConfigState(frozenset(d["voters"])))
        return cls(meta, bytes(d["data"]))


class MessageType(enum.IntEnum):
    APPEND = 1
    APPEND_RESP = 2
    HEARTBEAT = 3
    HEARTBEAT_RESP = 4
    VOTE = 5
    VOTE_RESP = 6
    PRE_VOTE = 7
    PRE_VOTE_RESP = 8
    SNAPSHOT = 9
    TIMEOUT_NOW = 10
    QUIESCE = 11
    """Host-level: the leader stops heartbeats of an idle group; never given to step()."""


@dataclass(slots=True)
class Message:
    """One Raft message. Fields not used by a type keep their defaults.

    APPEND: prev_index, prev_term, entries, commit.
    APPEND_RESP: index = last offset now matching the leader (accept), or the rejected
      prev_index (reject=True) with reject_hint (an offset at which the follower's log may
      match) and log_term (the follower's term at reject_hint).
    HEARTBEAT: commit (never above what the follower is known to match).
    VOTE / PRE_VOTE: index, log_term = the candidate's last offset and its term; force =
      the campaign follows a leadership transfer (ignore the leader lease).
    *_RESP to votes: reject.
    SNAPSHOT: snapshot.
    The core never mutates a message after it is handed out or received.
    """

    type: MessageType
    from_id: int
    to_id: int
    term: int
    prev_index: int = NO_INDEX
    prev_term: int = 0
    entries: Sequence[Entry] = ()
    commit: int = NO_INDEX
    index: int = NO_INDEX
    log_term: int = 0
    reject: bool = False
    reject_hint: int = NO_INDEX
    snapshot: Snapshot | None = None
    force: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": int(self.type),
            "from_id": self.from_id,
            "to_id": self.to_id,
            "term": self.term,
            "prev_index": self.prev_index,
            "prev_term": self.prev_term,
            "entries": [e.to_dict() for e in self.entries],
            "commit": self.commit,
            "index": self.index,
            "log_term": self.log_term,
            "reject": self.reject,
            "reject_hint": self.reject_hint,
            "force": self.force,
        }
        if self.snapshot is not None:
            d["snapshot"] = self.snapshot.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Message:
        snap = d.get("snapshot")
        return cls(
            type=MessageType(d["type"]),
            from_id=d["from_id"],
            to_id=d["to_id"],
            term=d["term"],
            prev_index=d["prev_index"],
            prev_term=d["prev_term"],
            entries=[Entry.from_dict(e) for e in d["entries"]] if d["entries"] else (),
            commit=d["commit"],
            index=d["index"],
            log_term=d["log_term"],
            reject=d["reject"],
            reject_hint=d["reject_hint"],
            snapshot=Snapshot.from_dict(snap) if snap is not None else None,
            force=d["force"],
        )


class Role(enum.IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    leader: int | None
    role: Role


@dataclass(slots=True)
class Ready:
    """Work for the host, to be done in this order, then ``RaftNode.advance(ready)``:

    1. durably write ``snapshot_to_apply`` (if any), then ``entries_to_persist`` (the first
       one replaces any stored entry at or after its index), then ``hard_state`` (if any);
    2. send ``messages``;
    3. apply ``snapshot_to_apply`` and then ``committed_entries`` to the state machine.
    ``commit_index`` is the commit index (last committed offset); ``commit_index + 1`` is
    the high watermark once ``hard_state`` (or an earlier one with that commit) is durable.
    """

    hard_state: HardState | None
    entries_to_persist: list[Entry]
    messages: list[Message]
    committed_entries: list[Entry]
    snapshot_to_apply: Snapshot | None
    soft_state: SoftState
    commit_index: int

    def must_persist(self) -> bool:
        return bool(
            self.hard_state is not None
            or self.entries_to_persist
            or self.snapshot_to_apply is not None
        )


class RaftError(Exception):
    """Base of the errors the core raises to its host."""


class NotLeader(RaftError):
    def __init__(self, leader_hint: int | None) -> None:
        super().__init__(f"not the leader (leader hint: {leader_hint})")
        self.leader_hint = leader_hint


class ProposalDropped(RaftError):
    """The leader cannot take the proposal now (transfer or config change in progress)."""
