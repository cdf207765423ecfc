"""Odradek's Raft consensus core: a deterministic state machine (no I/O, clock or threads).

See docs/architecture.md (section Raft) for the contract between the core and its host.
"""

from odradek.raft.log import RaftLog
from odradek.raft.node import RaftConfig, RaftNode
from odradek.raft.progress import Inflights, Progress, ProgressState
from odradek.raft.storage import LogStorage, MemoryStorage, PersistentLogStorage
from odradek.raft.types import (
    NO_INDEX,
    ConfigChangeType,
    ConfigState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    NotLeader,
    ProposalDropped,
    RaftError,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
    SoftState,
)

__all__ = [
    "NO_INDEX",
    "ConfigChangeType",
    "ConfigState",
    "Entry",
    "EntryKind",
    "HardState",
    "Inflights",
    "LogStorage",
    "MemoryStorage",
    "Message",
    "MessageType",
    "NotLeader",
    "PersistentLogStorage",
    "Progress",
    "ProgressState",
    "ProposalDropped",
    "RaftConfig",
    "RaftError",
    "RaftLog",
    "RaftNode",
    "Ready",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "SoftState",
]
