"""The hand-over between the Raft state machine and its host: what changed since the host
last took a Ready (messages queued, entries not yet durable, hard and soft state), the
Ready itself, and what the host's ``advance`` confirms (entries durable, applied).
The role logic (node.py) only queues messages and moves the log; this decides what a
Ready holds."""

from __future__ import annotations

from odradek.raft.log import RaftLog
from odradek.raft.types import HardState, Message, Ready, Role, Snapshot, SoftState


class ReadyState:
    def __init__(self, hard_state: HardState) -> None:
        self.outbox: list[Message] = []
        self.prev_hard_state = hard_state
        self.prev_leader: int | None = None
        self.prev_role = Role.FOLLOWER
        self.out = False  # a Ready was taken and not yet advanced

    def send(self, m: Message) -> None:
        self.outbox.append(m)

    def hard_state(self, term: int, vote: int | None, log: RaftLog) -> HardState | None:
        """The hard state when it changed since the last Ready, else None."""
        prev = self.prev_hard_state
        if prev.term != term or prev.vote != vote or prev.commit != log.committed:
            return HardState(term, vote, log.committed)
        return None

    def pending(self, term: int, vote: int | None, leader: int | None, role: Role,
                log: RaftLog) -> bool:
        """Is there anything for a Ready (broadcasts waiting aside)?"""
        if self.out:
            return False
        if self.outbox or log.unstable or log.pending_snapshot is not None:
            return True
        if self.hard_state(term, vote, log) is not None:
            return True
        if leader != self.prev_leader or role != self.prev_role:
            return True
        return log.committed > log.applied and log.pending_snapshot is None

    def take(self, term: int, vote: int | None, leader: int | None, role: Role, log: RaftLog,
             return_committed: bool, max_committed_bytes: int) -> Ready:
        if self.out:
            raise RuntimeError("ready() called again before advance()")
        committed = log.next_committed(max_committed_bytes) if return_committed else []
        msgs, self.outbox = self.outbox, []
        self.out = True
        return Ready(
            hard_state=self.hard_state(term, vote, log),
            entries_to_persist=list(log.unstable),
            messages=msgs,
            committed_entries=committed,
            snapshot_to_apply=log.pending_snapshot,
            soft_state=SoftState(leader, role),
            commit_index=log.committed,
        )

    def advance(self, rd: Ready, log: RaftLog, return_committed: bool) -> None:
        """The host persisted, sent and applied ``rd``: the log's stable and applied
        marks move."""
        self.out = False
        if rd.hard_state is not None:
            self.prev_hard_state = rd.hard_state
        self.prev_leader = rd.soft_state.leader
        self.prev_role = rd.soft_state.role
        snap: Snapshot | None = rd.snapshot_to_apply
        if snap is not None:
            log.stable_snap_to(snap.meta.index)
            log.applied_to(snap.meta.index)
        if rd.entries_to_persist:
            # normally all of them are still unstable; if a suffix was replaced meanwhile,
            # the prefix that is still ours is durable (the replacement comes next Ready)
            for e in reversed(rd.entries_to_persist):
                if log.stable_to(e.last, e.term):
                    break
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].last)
        elif not return_committed and log.pending_snapshot is None:
            log.applied_to(rd.commit_index)
