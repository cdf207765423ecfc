"""RaftNode: the Raft state machine. No I/O, no clock, no threads.

Inputs: ``tick()``, ``step(message)``, ``propose(...)``, ``transfer_leadership(...)``,
``propose_config_change(...)``, and ``advance(ready)`` once a Ready has been persisted.
Outputs: ``ready()``, holding what to persist, what to send and what is committed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from odradek.raft.log import RaftLog
from odradek.raft.progress import Progress, ProgressState
from odradek.raft.quorum import VoteResult, committed_index, has_majority, vote_result
from odradek.raft.ready import ReadyState
from odradek.raft.storage import LogStorage
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
    Ready,
    Role,
    SoftState,
)

_MT = MessageType
_WAITING = (Role.FOLLOWER, Role.PRE_CANDIDATE)


@dataclass(slots=True)
class RaftConfig:
    id: int
    election_ticks: int = 10
    """Followers campaign after a random timeout in [election_ticks, 2 * election_ticks)."""
    heartbeat_ticks: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_inflight: int = 64
    """Appends in flight per follower in the replicate state (pipelining window)."""
    max_inflight_bytes: int = 0
    """Bytes in flight per follower (0: unlimited)."""
    max_batch_bytes: int = 1 << 20
    """Soft limit on the entries of one append message (at least one entry is sent)."""
    max_committed_bytes: int = 16 << 20
    """Soft limit on the committed entries of one Ready."""
    return_committed_entries: bool = True
    """False: Ready.committed_entries stays empty and the host follows commit_index (a
    partition log needs only the high watermark, not the entries back)."""
    applied: int | None = None
    """Last offset the host's state machine has applied (default: the snapshot index)."""
    leader_lost_stagger_ticks: int = 2
    """After ``leader_lost``, the voters left campaign one after another, this many ticks
    apart (the first at once), so that two followers that lost the same leader at the same
    moment do not split the vote."""
    lost_commit: int = NO_INDEX
    """A commit index this node once held durably whose entries its log has since lost
    (recovery cut a corrupt batch, or unsynced writes were lost). Until its log reaches it
    again the node neither votes nor campaigns: its shorter log could help elect a leader
    without entries that only it and a minority held."""


class RaftNode:
    def __init__(self, config: RaftConfig, storage: LogStorage, rng: random.Random) -> None:
        if config.election_ticks <= config.heartbeat_ticks or config.heartbeat_ticks < 1:
            raise ValueError("need 1 <= heartbeat_ticks < election_ticks")
        if config.max_inflight < 1:
            raise ValueError("max_inflight must be >= 1")
        self.cfg = config
        self.id = config.id
        self.rng = rng
        self.storage = storage
        self.log = RaftLog(storage, config.applied)
        hs = storage.initial_state()
        self.term = hs.term
        self.vote: int | None = hs.vote
        self.role = Role.FOLLOWER
        self.leader: int | None = None
        # membership: base (from the snapshot) and the CONFIG entries of the log after it
        self._config_base = storage.snapshot_meta().config
        self._config_log: list[tuple[int, ConfigState]] = [
            (e.index, ConfigState.decode(e.data)) for e in storage.config_entries()
        ]
        self.config = self._config_log[-1][1] if self._config_log else self._config_base
        self.progress: dict[int, Progress] = {}
        self._votes: dict[int, bool] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = config.election_ticks
        self.lead_transferee: int | None = None
        self._transfer_elapsed = 0
        self._term_start = NO_INDEX
        self._bcast_append = False
        self._bcast_commit = False
        self._ready = ReadyState(hs)
        self._lost_commit = config.lost_commit
        # Since leader_lost in this term: campaign before our turn on a staler request.
        self._leader_lost = False
        self._become_follower(self.term, None)

    # =============================================================== public accessors
    @property
    def commit_index(self) -> int:
        return self.log.committed

    @property
    def high_watermark(self) -> int:
        return self.log.committed + 1

    @property
    def last_index(self) -> int:
        return self.log.last_index()

    @property
    def term_start(self) -> int:
        """As leader: the offset of its term's first entry (its no-op). Until that is
        committed its commit index may lag what an earlier leader committed."""
        return self._term_start

    @property
    def config_index(self) -> int:
        """Offset of the latest membership change in the log (NO_INDEX if none)."""
        return self._config_log[-1][0] if self._config_log else NO_INDEX

    def is_leader(self) -> bool:
        return self.role == Role.LEADER

    def promotable(self) -> bool:
        return self.id in self.config.voters

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def soft_state(self) -> SoftState:
        return SoftState(self.leader, self.role)

    # ========================================================================= ticks
    def tick(self) -> None:
        if self.role == Role.LEADER:
            self._tick_leader()
            return
        self.election_elapsed += 1
        if self.election_elapsed >= self.randomized_timeout:
            self.election_elapsed = 0
            if self._repairing():
                self._ask_for_entries()
            elif self.promotable():
                self._start_election(force=False)

    def _ask_for_entries(self) -> None:
        """A repairing node that heard no leader for an election timeout tells the voters
        where its log ends, as its answer to a heartbeat would: a leader whose group went
        quiet (no heartbeats to answer) learns so that it must send the entries again."""
        last = self.log.last_index()
        to = [self.leader] if self.leader is not None else sorted(self.config.voters)
        for v in to:
            if v != self.id:
                self._send(Message(_MT.HEARTBEAT_RESP, self.id, v, self.term, reject=True,
                                   reject_hint=last))

    def _tick_leader(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.lead_transferee is not None:
            self._transfer_elapsed += 1
            if self._transfer_elapsed >= self.cfg.election_ticks:
                self.lead_transferee = None
        if self.election_elapsed >= self.cfg.election_ticks:
            self.election_elapsed = 0
            if self.cfg.check_quorum:
                if not self._quorum_active():
                    self._become_follower(self.term, None)
                    return
                for pid, pr in self.progress.items():
                    if pid != self.id:
                        pr.recent_active = False
            for pr in self.progress.values():
                if pr.state == ProgressState.SNAPSHOT:
                    if pr.snapshot_stale:
                        pr.become_probe()  # the snapshot was probably lost: probe again
                    else:
                        pr.snapshot_stale = True
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat()

    def _quorum_active(self) -> bool:
        def active(v: int) -> bool:
            pr = self.progress.get(v)
            return v == self.id or (pr is not None and pr.recent_active)

        return has_majority(self.config.voters, active)

    def leader_lost(self, node_id: int) -> None:
        """The host saw the connection to ``node_id``'s broker break (reset or refused, not
        a timeout): if that is our leader, it is gone. We drop it, which also ends its
        lease here (we grant other candidates' votes), and campaign without waiting out the
        election timeout, still with PreVote: a voter that still hears from the leader
        keeps refusing, so one broken link cannot depose a healthy leader.

        The voters left take turns by a deterministic order (rotated by the term, so that
        the groups of one lost broker do not all pick the same successor): the first
        campaigns now, the next ``leader_lost_stagger_ticks`` later, and so on. A voter
        whose log is more up to date than a candidate's does not wait its turn (see
        _handle_vote_request)."""
        if self.role != Role.FOLLOWER or self.leader != node_id or node_id == self.id:
            return
        self.leader = None
        if not self.promotable() or self._repairing():
            return
        order = sorted(v for v in self.config.voters if v != node_id)
        shift = self.term % len(order)
        order = order[shift:] + order[:shift]
        rank = order.index(self.id)
        self._leader_lost = True
        if rank == 0:
            self._start_election(force=False)
            return
        self.election_elapsed = 0
        self.randomized_timeout = rank * self.cfg.leader_lost_stagger_ticks

    # ===================================================================== proposals
    def propose(self, data: bytes, count: int = 1, kind: EntryKind = EntryKind.NORMAL) -> int:
        """Append an entry covering ``count`` offsets; returns its base offset."""
        if kind == EntryKind.CONFIG:
            raise ValueError("use propose_config_change for membership changes")
        if count < 1:
            raise ValueError("count must be >= 1")
        self._check_can_propose()
        index = self.log.last_index() + 1
        self._append_own([Entry(index, count, self.term, data, kind)])
        return index

    def propose_batch(self, items: list[tuple[bytes, int]]) -> list[int]:
        """Propose several (data, count) entries at once; returns their base offsets."""
        self._check_can_propose()
        index = self.log.last_index() + 1
        ents: list[Entry] = []
        for data, count in items:
            if count < 1:
                raise ValueError("count must be >= 1")
            ents.append(Entry(index, count, self.term, data))
            index += count
        self._append_own(ents)
        return [e.index for e in ents]

    def _check_can_propose(self) -> None:
        if self.role != Role.LEADER:
            raise NotLeader(self.leader)
        if self.lead_transferee is not None:
            raise ProposalDropped(f"leadership transfer to {self.lead_transferee} in progress")

    def propose_config_change(self, change: ConfigChangeType, node_id: int) -> int:
        """Add or remove one voter. One change at a time; it takes effect when appended.
        Returns the index of the CONFIG entry."""
        self._check_can_propose()
        if self.log.committed < self._term_start:
            raise ProposalDropped("the leader has not committed an entry of its term yet")
        if self._config_log and self._config_log[-1][0] > self.log.committed:
            raise ProposalDropped("a membership change is still pending")
        voters = self.config.voters
        if change == ConfigChangeType.ADD_VOTER:
            if node_id in voters:
                raise ValueError(f"{node_id} is already a voter")
            new = voters | {node_id}
        else:
            if node_id not in voters:
                raise ValueError(f"{node_id} is not a voter")
            new = voters - {node_id}
            if not new:
                raise ValueError("cannot remove the last voter")
        index = self.log.last_index() + 1
        cfg = ConfigState(frozenset(new))
        self._append_own([Entry(index, 1, self.term, cfg.encode(), EntryKind.CONFIG)])
        return index

    def _append_own(self, entries: list[Entry]) -> None:
        self.log.append(entries)
        for e in entries:
            if e.kind == EntryKind.CONFIG:
                self._apply_config(e.index, ConfigState.decode(e.data))
        self._bcast_append = True

    # ======================================================================= transfer
    def transfer_leadership(self, to: int) -> None:
        if self.role != Role.LEADER:
            raise NotLeader(self.leader)
        if to == self.id:
            self.lead_transferee = None
            return
        if to not in self.config.voters:
            raise ValueError(f"{to} is not a voter")
        if self.lead_transferee == to:
            return
        self.lead_transferee = to
        self._transfer_elapsed = 0
        pr = self.progress[to]
        if pr.match == self.log.last_index():
            self._send_timeout_now(to)
        else:
            self._send_append(to, True)

    def _send_timeout_now(self, to: int) -> None:
        self._send(Message(_MT.TIMEOUT_NOW, self.id, to, self.term))

    # ========================================================================== step
    def step(self, m: Message) -> None:
        if m.term > self.term:
            if m.type in (_MT.VOTE, _MT.PRE_VOTE):
                in_lease = (
                    self.cfg.check_quorum
                    and self.leader is not None
                    and self.election_elapsed < self.cfg.election_ticks
                )
                if in_lease and not m.force:
                    return  # a live leader was heard from recently: ignore (leader lease)
            if m.type == _MT.PRE_VOTE or (m.type == _MT.PRE_VOTE_RESP and not m.reject):
                pass  # pre-votes never change our term
            elif m.type in (_MT.APPEND, _MT.HEARTBEAT, _MT.SNAPSHOT):
                self._become_follower(m.term, m.from_id)
            else:
                self._become_follower(m.term, None)
        elif m.term < self.term:
            if m.type in (_MT.APPEND, _MT.HEARTBEAT) and (
                self.cfg.check_quorum or self.cfg.pre_vote
            ):
                # a stale leader (maybe partitioned): our term makes it step down
                self._send(Message(_MT.APPEND_RESP, self.id, m.from_id, self.term))
            elif m.type == _MT.PRE_VOTE:
                self._send(Message(_MT.PRE_VOTE_RESP, self.id, m.from_id, self.term, reject=True))
            return

        t = m.type
        if t == _MT.VOTE or t == _MT.PRE_VOTE:
            self._handle_vote_request(m)
        elif self.role == Role.LEADER:
            self._step_leader(m)
        elif self.role == Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _repairing(self) -> bool:
        """Is the log still short of entries this node once had committed?"""
        if self._lost_commit == NO_INDEX:
            return False
        if self.log.last_index() >= self._lost_commit:
            self._lost_commit = NO_INDEX
            return False
        return True

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = not self._repairing() and (
            self.vote == m.from_id
            or (self.vote is None and self.leader is None)
            or (m.type == _MT.PRE_VOTE and m.term > self.term)
        )
        resp = _MT.VOTE_RESP if m.type == _MT.VOTE else _MT.PRE_VOTE_RESP
        up_to_date = self.log.is_up_to_date(m.index, m.log_term)
        if can_vote and up_to_date:
            # a granted pre-vote answers in the future term the candidate asked for
            self._send(Message(resp, self.id, m.from_id, m.term))
            if m.type == _MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.from_id
        else:
            self._send(Message(resp, self.id, m.from_id, self.term, reject=True))
            if self._leader_lost and not up_to_date and self.role in _WAITING:
                # The candidate that went first cannot win (our log is ahead, so neither
                # we nor voters like us elect it): go now instead of at our turn. A
                # pre-candidate asks again, since its first requests may have reached
                # voters that still held the lost leader's lease.
                self._start_election(force=False)

    # ---------------------------------------------------------------- follower
    def _step_follower(self, m: Message) -> None:
        t = m.type
        if self._leader_lost and t in (_MT.APPEND, _MT.HEARTBEAT, _MT.SNAPSHOT):
            # The leader we took for lost speaks again (the link came back): wait for it a
            # whole election timeout again, not for our turn to campaign.
            self._leader_lost = False
            self._randomize_timeout()
        if t == _MT.APPEND:
            self.election_elapsed = 0
            self.leader = m.from_id
            self._handle_append(m)
        elif t == _MT.HEARTBEAT:
            self.election_elapsed = 0
            self.leader = m.from_id
            self._handle_heartbeat(m)
        elif t == _MT.SNAPSHOT:
            self.election_elapsed = 0
            self.leader = m.from_id
            self._handle_snapshot(m)
        elif t == _MT.TIMEOUT_NOW and self.promotable():
            self._campaign(force=True)

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        if t in (_MT.APPEND, _MT.HEARTBEAT, _MT.SNAPSHOT):
            # a leader of our term exists
            self._become_follower(self.term, m.from_id)
            self._step_follower(m)
        elif (t == _MT.PRE_VOTE_RESP and self.role == Role.PRE_CANDIDATE) or (
            t == _MT.VOTE_RESP and self.role == Role.CANDIDATE
        ):
            self._votes[m.from_id] = not m.reject
            result = vote_result(self.config.voters, self._votes)
            if result == VoteResult.WON:
                if self.role == Role.PRE_CANDIDATE:
                    self._campaign(force=False)
                else:
                    self._become_leader()
            elif result == VoteResult.LOST:
                self._become_follower(self.term, None)

    def _handle_append(self, m: Message) -> None:
        log = self.log
        if m.prev_index < log.committed:
            self._send(Message(_MT.APPEND_RESP, self.id, m.from_id, self.term, index=log.committed))
            return
        if log.match_term(m.prev_index, m.prev_term):
            ents = m.entries
            last_new = ents[-1].last if ents else m.prev_index
            pos = log.find_conflict(ents)
            if pos < len(ents):
                tail = ents[pos:] if pos else ents
                first = tail[0].index
                if first <= log.last_index():
                    self._truncate_config(first)
                log.append(tail)
                for e in tail:
                    if e.kind == EntryKind.CONFIG:
                        self._apply_config(e.index, ConfigState.decode(e.data))
            log.commit_to(min(m.commit, last_new))
            self._send(Message(_MT.APPEND_RESP, self.id, m.from_id, self.term, index=last_new))
            return
        hint = log.find_conflict_by_term(min(m.prev_index, log.last_index()), m.prev_term)
        hint_term = log.term(hint)
        self._send(
            Message(
                _MT.APPEND_RESP,
                self.id,
                m.from_id,
                self.term,
                index=m.prev_index,
                reject=True,
                reject_hint=hint,
                log_term=hint_term if hint_term is not None else 0,
            )
        )

    def _handle_heartbeat(self, m: Message) -> None:
        last = self.log.last_index()
        self.log.commit_to(min(m.commit, last))
        # The leader holds us to a match above our log end: we lost entries we had
        # acknowledged. Say where the log ends so that the leader sends them again.
        lost = m.commit > last
        self._send(Message(_MT.HEARTBEAT_RESP, self.id, m.from_id, self.term, reject=lost,
                           reject_hint=last if lost else 0))

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        assert snap is not None
        log = self.log
        meta = snap.meta
        if meta.index <= log.committed:
            idx = log.committed
        elif log.match_term(meta.index, meta.term):
            # we already have the entries: just fast-forward the commit
            log.commit_to(meta.index)
            idx = log.committed
        else:
            log.restore(snap)
            self._config_base = meta.config
            self._config_log = []
            self.config = meta.config
            idx = meta.index
        self._send(Message(_MT.APPEND_RESP, self.id, m.from_id, self.term, index=idx))

    # ------------------------------------------------------------------ leader
    def _step_leader(self, m: Message) -> None:
        pr = self.progress.get(m.from_id)
        if pr is None:
            return
        t = m.type
        if t == _MT.APPEND_RESP:
            pr.recent_active = True
            if m.reject:
                self._handle_reject(m, pr)
            else:
                self._handle_append_ok(m, pr)
        elif t == _MT.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if m.reject and m.reject_hint < pr.match:
                # The follower lost acknowledged entries (see _handle_heartbeat): its
                # match goes back, the one case where it may, and it is probed afresh.
                pr.match = m.reject_hint
                pr.next = m.reject_hint + 1
                pr.become_probe()
            if pr.state == ProgressState.REPLICATE and pr.inflights.full():
                pr.inflights.free_first()
            if pr.match < self.log.last_index():
                self._send_append(m.from_id, True)

    def _handle_reject(self, m: Message, pr: Progress) -> None:
        log = self.log
        guess = m.reject_hint
        if m.log_term > 0:
            guess = log.find_conflict_by_term(m.reject_hint, m.log_term)
        new_prev = log.floor_boundary(min(m.index - 1, guess))
        if pr.maybe_decr_to(m.index, new_prev + 1):
            if pr.state == ProgressState.REPLICATE:
                pr.become_probe()
            self._send_append(m.from_id, True)

    def _handle_append_ok(self, m: Message, pr: Progress) -> None:
        was_paused = pr.is_paused()
        if pr.maybe_update(m.index) or (
            pr.match == m.index and pr.state == ProgressState.PROBE
        ):
            if pr.state == ProgressState.PROBE:
                pr.become_replicate()
            elif pr.state == ProgressState.SNAPSHOT:
                if pr.match >= pr.pending_snapshot or pr.match + 1 >= self.log.first_index():
                    pr.become_replicate()
            else:
                pr.inflights.free_le(m.index)
            if self._maybe_commit():
                self._bcast_commit = True
            elif was_paused:
                # it may not know the commit index: tell it, even with no entries
                self._send_append(m.from_id, True)
            if self.role != Role.LEADER:
                return  # stepped down (removed from the config)
            while self._send_append(m.from_id, False):
                pass
            if m.from_id == self.lead_transferee and pr.match == self.log.last_index():
                self._send_timeout_now(m.from_id)

    def _maybe_commit(self) -> bool:
        voters = self.config.voters
        progress = self.progress
        idx = committed_index(
            voters, lambda v: progress[v].match if v in progress else NO_INDEX)
        log = self.log
        if idx <= log.committed or log.term(idx) != self.term:
            return False  # only entries of the current term are committed by counting
        log.commit_to(idx)
        if (
            self.id not in voters
            and self._config_log
            and self._config_log[-1][0] <= log.committed
        ):
            # our own removal is committed: hand over by stepping down
            self._become_follower(self.term, None)
        return True

    def _send_append(self, to: int, send_if_empty: bool) -> bool:
        pr = self.progress[to]
        if pr.is_paused():
            return False
        log = self.log
        prev = pr.next - 1
        prev_term = log.term(prev)
        ents: list[Entry] | None = None
        if prev_term is not None:
            ents = log.entries_from(pr.next, self.cfg.max_batch_bytes)
        if prev_term is None or ents is None:
            return self._send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        self._send(
            Message(
                _MT.APPEND,
                self.id,
                to,
                self.term,
                prev_index=prev,
                prev_term=prev_term,
                entries=ents,
                commit=log.committed,
            )
        )
        if pr.state == ProgressState.REPLICATE:
            if ents:
                last = ents[-1].last
                pr.next = last + 1
                pr.inflights.add(last, sum(e.size() for e in ents))
        else:
            pr.probe_sent = True
        return True

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            return False
        snap = self.log.pending_snapshot or self.storage.snapshot()
        if snap.meta.index < self.log.first_index() - 1:
            return False  # storage has no snapshot covering its compacted prefix
        pr.become_snapshot(snap.meta.index)
        self._send(Message(_MT.SNAPSHOT, self.id, to, self.term, snapshot=snap))
        return True

    def _bcast_heartbeat(self) -> None:
        committed = self.log.committed
        for pid, pr in self.progress.items():
            if pid == self.id:
                continue
            c = pr.match if pr.match < committed else committed
            self._send(Message(_MT.HEARTBEAT, self.id, pid, self.term, commit=c))

    def _flush_broadcasts(self) -> None:
        if self.role != Role.LEADER:
            self._bcast_append = self._bcast_commit = False
            return
        send_if_empty = self._bcast_commit
        self._bcast_append = self._bcast_commit = False
        for pid in self.progress:
            if pid == self.id:
                continue
            if self._send_append(pid, send_if_empty):
                while self._send_append(pid, False):
                    pass

    # ================================================================ role changes
    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = None
            self._leader_lost = False
        self.leader = None
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._randomize_timeout()
        self.lead_transferee = None
        self._votes = {}
        self.progress = {}

    def _randomize_timeout(self) -> None:
        self.randomized_timeout = self.cfg.election_ticks + self.rng.randrange(
            self.cfg.election_ticks
        )

    def _become_follower(self, term: int, leader: int | None) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader = leader

    def _start_election(self, force: bool) -> None:
        if self._repairing():
            return  # see RaftConfig.lost_commit
        if self.cfg.pre_vote and not force:
            self._reset(self.term)
            self.role = Role.PRE_CANDIDATE
            self._request_votes(_MT.PRE_VOTE, self.term + 1, False)
        else:
            self._campaign(force)

    def _campaign(self, force: bool) -> None:
        self._reset(self.term + 1)
        self.role = Role.CANDIDATE
        self.vote = self.id
        self._request_votes(_MT.VOTE, self.term, force)

    def _request_votes(self, mtype: MessageType, term: int, force: bool) -> None:
        if self.id in self.config.voters:
            self._votes[self.id] = True
        if vote_result(self.config.voters, self._votes) == VoteResult.WON:
            if mtype == _MT.PRE_VOTE:
                self._campaign(force)
            else:
                self._become_leader()
            return
        last = self.log.last_index()
        last_term = self.log.last_term()
        for v in sorted(self.config.voters):
            if v != self.id:
                self._send(
                    Message(mtype, self.id, v, term, index=last, log_term=last_term, force=force)
                )

    def _become_leader(self) -> None:
        self._reset(self.term)
        self._leader_lost = False
        self.role = Role.LEADER
        self.leader = self.id
        last = self.log.last_index()
        for v in self.config.voters:
            self._add_progress(v, last + 1)
        if self.id not in self.progress:
            self._add_progress(self.id, last + 1)
        me = self.progress[self.id]
        me.match = self.log.stable_last()
        me.recent_active = True
        me.become_replicate()
        self._term_start = last + 1
        self._append_own([Entry(last + 1, 1, self.term, b"", EntryKind.NOOP)])

    def _add_progress(self, pid: int, next_index: int) -> None:
        self.progress[pid] = Progress(
            next_index, self.cfg.max_inflight, self.cfg.max_inflight_bytes
        )

    # ================================================================== membership
    def _apply_config(self, index: int, cfg: ConfigState) -> None:
        self._config_log.append((index, cfg))
        self._set_config(cfg)

    def _truncate_config(self, first: int) -> None:
        """The log is cut at ``first``: forget CONFIG entries from there on."""
        cl = self._config_log
        if cl and cl[-1][0] >= first:
            while cl and cl[-1][0] >= first:
                cl.pop()
            self._set_config(cl[-1][1] if cl else self._config_base)

    def _set_config(self, cfg: ConfigState) -> None:
        self.config = cfg
        if self.role != Role.LEADER:
            return
        last = self.log.last_index()
        for v in cfg.voters:
            if v not in self.progress:
                self._add_progress(v, last + 1)
        for pid in list(self.progress):
            if pid not in cfg.voters and pid != self.id:
                del self.progress[pid]
        if self.lead_transferee is not None and self.lead_transferee not in cfg.voters:
            self.lead_transferee = None

    # ======================================================================= ready
    def _send(self, m: Message) -> None:
        self._ready.send(m)

    def has_ready(self) -> bool:
        if self._ready.out:
            return False
        return self._bcast_append or self._bcast_commit or self._ready.pending(
            self.term, self.vote, self.leader, self.role, self.log)

    def ready(self) -> Ready:
        """Everything to do now. Call ``advance(ready)`` when done, before the next one."""
        if not self._ready.out and (self._bcast_append or self._bcast_commit):
            self._flush_broadcasts()
        return self._ready.take(self.term, self.vote, self.leader, self.role, self.log,
                                self.cfg.return_committed_entries, self.cfg.max_committed_bytes)

    def abandon(self, rd: Ready) -> None:
        """The host could not persist ``rd`` (its disk refused the write or the fsync): the
        next ready() hands out its entries, hard state and snapshot again, since none of
        them became stable. Its messages are dropped, as a lossy network would drop them.
        Without this the node waited for an advance() that never came: it stopped
        producing Ready for good."""
        del rd
        self._ready.out = False

    def advance(self, rd: Ready) -> None:
        """The host persisted, sent and applied ``rd``."""
        self._ready.advance(rd, self.log, self.cfg.return_committed_entries)
        if self.role == Role.LEADER and rd.entries_to_persist:
            # the leader's own entries count towards the quorum only once durable
            me = self.progress.get(self.id)
            if me is not None and me.maybe_update(self.log.stable_last()) and self._maybe_commit():
                self._bcast_commit = True
