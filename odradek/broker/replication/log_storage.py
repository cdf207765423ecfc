"""The partition log seen through Raft's storage protocol: nothing is written twice.

A Raft entry is one stored batch: index = baseOffset, count = lastOffsetDelta + 1,
term = partitionLeaderEpoch. Besides the log, a partition keeps a small state file with
what Raft must remember and the log cannot tell cheaply: the vote, the current term,
the commit index, the offsets where each term began (Kafka's leader-epoch cache), the
membership changes, and the voters the group started with.

Durability follows the topic's fsync policy, as the design says: durability is the
majority's. With flush.messages=1 every Ready's entries and hard state are fsynced before
its messages leave (one fsync per Ready: group commit), so acknowledged writes survive a
power loss of every replica; the simulator runs this way. With the default policy, writes
reach the page cache (they survive a killed process, not a lost machine) and the log is
fsynced by flush.messages / flush.ms; the term and vote are always fsynced, and the commit
index is saved at most every COMMIT_SAVE_INTERVAL_S (to the journal, unsynced, where
there is one; the state file then at most every STATE_CACHE_INTERVAL_S, for its cache of
the log's terms and configs). The state file is a cache of the log
below ``scanned_to``; any change to the log below that point (truncation, snapshot
install) first saves the state durably (write-ahead), so that after a crash the state file
never describes log contents that are gone or replaced.

With ``sync_behind`` (the broker's partitions), append and set_hard_state write without
fsyncing; the fsyncs they owe are handed to the Raft host (``take_sync``), which runs them
in its fsync thread and sends the Ready's messages only after, so no produce or fetch
waits on the event loop behind another partition's fsync. With a ``journal`` (the
broker's StateJournal) a hard state that must be durable is appended there instead of
rewriting the state file, and the owed sync waits for the journal's fsync, which one
call makes for every partition of the broker (state_journal.py); at load the newer of
the state file's and the journal's hard state wins. Writes that change what is already
stored (truncation, snapshot install) still fsync in place, write-ahead."""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from odradek.broker import clock as broker_clock
from odradek.broker.replication.control import decode_control, encode_control, log_start_of
from odradek.broker.replication.producer_log import ProducerStateStore
from odradek.broker.replication.producer_state import DEFAULT_EXPIRATION_MS
from odradek.broker.replication.state_journal import StateJournal, newer
from odradek.raft import (
    NO_INDEX,
    ConfigState,
    Entry,
    EntryKind,
    HardState,
    Snapshot,
    SnapshotMeta,
)
from odradek.records import iter_batches
from odradek.records.batch import set_offset_and_epoch
from odradek.storage import CorruptBatchError, PartitionLog
from odradek.storage.cleaner import fsync_dir

STATE_FILE = "raft-state.json"
COMMIT_SAVE_INTERVAL_S = 1.0
STATE_CACHE_INTERVAL_S = 30.0
SCAN_CHUNK = 4 << 20


@dataclass
class RaftState:
    term: int = 0
    vote: int | None = None
    commit: int = NO_INDEX
    voters: list[int] = field(default_factory=list)
    # (first offset, term) for each term that has entries, ascending.
    epochs: list[tuple[int, int]] = field(default_factory=list)
    # (offset, voters) of CONFIG entries in the log.
    configs: list[tuple[int, list[int]]] = field(default_factory=list)
    # The log end offset up to which epochs and configs are known to be complete.
    scanned_to: int = 0
    # Set while a snapshot install resets the log: a load completes the reset.
    reset_to: int | None = None
    # The last offset this replica held (and may have acknowledged) before a corrupt batch
    # was cut: RaftConfig.lost_commit until the log reaches it again.
    lost: int = NO_INDEX
    # (offset, new log start) of DeleteRecords entries not yet committed: each moves the
    # log start when the commit index reaches it, on every replica.
    starts: list[tuple[int, int]] = field(default_factory=list)


class PartitionRaftStorage:
    """Implements odradek.raft.PersistentLogStorage over a PartitionLog."""

    def __init__(self, log: PartitionLog, initial_voters: Sequence[int],
                 clock: Callable[[], int] | None = None,
                 producer_id_expiration_ms: int = DEFAULT_EXPIRATION_MS,
                 producer_state: bool = True, sync_behind: bool = False,
                 journal: StateJournal | None = None, journal_key: str = "") -> None:
        self.log = log
        self.sync_behind = sync_behind
        # sync_behind: the broker's journal takes the hard states that must be durable.
        self.journal = journal if sync_behind else None
        self.journal_key = journal_key
        self._log_owed = False  # sync_behind: a flush the topic's policy asks for
        self._state_owed: str | None = None  # sync_behind: a state to save durably
        self._journal_owed = 0  # sync_behind: the journal ticket to wait for
        self.path = log_dir(log) / STATE_FILE
        self._clock = clock or broker_clock.time_ms
        self._commit_saved_at = 0.0
        # With a journal, the state file is rewritten at most every STATE_CACHE_INTERVAL_S
        # for what only it holds (how far the log was scanned, and what was found), so
        # that a restart rescans at most that much; a new replica has none for as long.
        self._cache_saved_at = broker_clock.monotonic()
        self._cache_saved: tuple[int, ...] = ()
        self.producers: ProducerStateStore | None = None  # made once the log is checked
        # Corrupt batches the load scan cut (before anyone could be told: see repair.py).
        self.corrupt_at_load: list[CorruptBatchError] = []
        self.state = self._load(initial_voters)
        self._catch_up_scan()
        self._apply_starts()
        # Idempotent producers' sequence state, kept as batches enter the log (not for the
        # metadata log, which no producer writes).
        self.producers = ProducerStateStore(log, producer_id_expiration_ms, self._clock) \
            if producer_state else None

    # ------------------------------------------------------------------ persistence
    def _load(self, initial_voters: Sequence[int]) -> RaftState:
        try:
            raw = json.loads(self.path.read_text())
            state = RaftState(
                term=raw["term"], vote=raw["vote"], commit=raw["commit"], voters=raw["voters"],
                epochs=[(a, b) for a, b in raw["epochs"]],
                configs=[(a, list(b)) for a, b in raw["configs"]], scanned_to=raw["scanned_to"],
                reset_to=raw.get("reset_to"), lost=raw.get("lost", NO_INDEX),
                starts=[(a, b) for a, b in raw.get("starts", [])])
        except FileNotFoundError:
            state = RaftState(voters=sorted(initial_voters))
        journaled = self.journal.get(self.journal_key) if self.journal is not None else None
        if journaled is not None and newer(journaled, HardState(state.term, state.vote,
                                                                state.commit)):
            state.term, state.vote, state.commit = \
                journaled.term, journaled.vote, journaled.commit
        if state.reset_to is not None:
            # A crash interrupted apply_snapshot after the state was saved: finish it.
            self.log.reset_to(state.reset_to)
            state.reset_to = None
            self.state = state
            self.save(sync=True)
        self.lost_commit = NO_INDEX
        self._forget_beyond_end(state)
        state.commit = min(state.commit, self.log.log_end_offset - 1)
        return state

    def _forget_beyond_end(self, state: RaftState) -> None:
        """After the log's tail was cut (by recovery, or for a corrupt batch): forget what
        lay beyond the end."""
        end = self.log.log_end_offset
        state.epochs = [(o, t) for o, t in state.epochs if o < end]
        state.configs = [(o, v) for o, v in state.configs if o < end]
        state.starts = [(o, v) for o, v in state.starts if o < end]
        state.scanned_to = min(state.scanned_to, end)
        # Committed entries gone (a corrupt batch cut, or unsynced writes lost): Raft
        # must not count this replica's log as holding them (RaftConfig.lost_commit). The
        # mark goes into the state, which next saves a commit index below it.
        if state.commit > end - 1:
            state.lost = max(state.lost, state.commit)
        if state.lost > end - 1:
            self.lost_commit = max(self.lost_commit, state.lost)
        else:
            state.lost = NO_INDEX

    def drop_corrupt(self, offset: int, commit: int = NO_INDEX) -> None:
        """Cuts the log at a corrupt batch's base offset, as recovery does after an
        unclean stop; the host then makes a new RaftNode with lost_commit, so this replica
        neither votes nor campaigns until the leader has given it its log back. commit is
        the node's commit index, which may be ahead of the one last saved.

        Everything the log held counts as lost, not only what it knew committed: it may
        have acknowledged entries that a leader then committed (and the saved commit index
        lags). The mark is saved apart from the commit index, which stays a true one."""
        held = self.log.log_end_offset - 1
        self.state.commit = max(self.state.commit, commit)
        if held >= offset:
            self.state.lost = max(self.state.lost, held, self.state.commit)
        self.truncate(offset)
        self._forget_beyond_end(self.state)
        self.state.commit = min(self.state.commit, self.log.log_end_offset - 1)
        self.save(sync=True)

    def save(self, sync: bool) -> None:
        self._write_state(self._state_json(), sync)
        self._cache_saved_at, self._cache_saved = broker_clock.monotonic(), self._cache_key()

    def _state_json(self) -> str:
        s = self.state
        return json.dumps({"term": s.term, "vote": s.vote, "commit": s.commit,
                           "voters": s.voters, "epochs": s.epochs, "configs": s.configs,
                           "scanned_to": s.scanned_to, "reset_to": s.reset_to,
                           "lost": s.lost, "starts": s.starts})

    def _write_state(self, data: str, sync: bool) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.path)
        if sync:
            fsync_dir(self.path.parent)

    def _catch_up_scan(self) -> None:
        """Learns the terms and configs of batches written after the state file was saved."""
        offset = max(self.state.scanned_to, self.log.log_start_offset)
        while offset < self.log.log_end_offset:
            try:
                chunk = self.log.read(offset, SCAN_CHUNK).data
            except CorruptBatchError as exc:
                # Found at load: cut here, before the node is made (lost_commit), and
                # read the chunk again up to the cut (its terms are still to be learnt).
                self.corrupt_at_load.append(exc)
                self.drop_corrupt(exc.offset)
                continue
            if not chunk:
                break
            for pos, header in iter_batches(chunk):
                if header.last_offset < offset:
                    continue
                self._note(header.base_offset, header.leader_epoch)
                if header.is_control:
                    kind, data = decode_control(memoryview(chunk)[pos : pos + header.size])
                    if kind == EntryKind.CONFIG:
                        self.state.configs.append(
                            (header.base_offset, sorted(ConfigState.decode(data).voters)))
                    self._note_start(header.base_offset,
                                     memoryview(chunk)[pos : pos + header.size])
                offset = header.next_offset
        self.state.scanned_to = self.log.log_end_offset

    def _note_start(self, index: int, batch: bytes | bytearray | memoryview) -> None:
        start = log_start_of(batch)
        if start is not None:
            self.state.starts.append((index, start))

    def _apply_starts(self) -> None:
        """Moves the log start for the DeleteRecords entries now committed. Idempotent:
        one applied but not yet dropped from the saved state is applied again harmlessly."""
        s = self.state
        due = [v for o, v in s.starts if o <= s.commit]
        if not due:
            return
        s.starts = [(o, v) for o, v in s.starts if o > s.commit]
        self.log.advance_start(min(max(due), self.log.log_end_offset))

    def _note(self, index: int, term: int) -> None:
        epochs = self.state.epochs
        if not epochs or term > epochs[-1][1]:
            epochs.append((index, term))

    # ------------------------------------------------------------- LogStorage (reads)
    def initial_state(self) -> HardState:
        s = self.state
        return HardState(s.term, s.vote, min(s.commit, self.last_index()))

    def snapshot_meta(self) -> SnapshotMeta:
        index = self.log.log_start_offset - 1
        term = self.term_of(index) if index >= 0 else 0
        return SnapshotMeta(index, term or 0, ConfigState(frozenset(self._base_voters())))

    def _base_voters(self) -> list[int]:
        start = self.log.log_start_offset
        before = [v for o, v in self.state.configs if o < start]
        return before[-1] if before else self.state.voters

    def snapshot(self) -> Snapshot:
        # A partition's "snapshot" is empty: a follower below the leader's log start
        # drops its log and continues from there, as a Kafka follower does.
        return Snapshot(self.snapshot_meta(), b"")

    def first_index(self) -> int:
        return self.log.log_start_offset

    def last_index(self) -> int:
        return self.log.log_end_offset - 1

    def term_of(self, offset: int) -> int | None:
        epochs = self.state.epochs
        i = bisect.bisect_right(epochs, (offset, 1 << 62)) - 1
        return epochs[i][1] if i >= 0 else None

    def epoch_end(self, epoch: int) -> tuple[int, int]:
        """(the largest leader epoch at or below ``epoch``, the offset where the epoch after
        it begins), the log end offset for the latest epoch; (-1, -1) when unknown. What
        Kafka's OffsetForLeaderEpoch answers: the Raft term is the leader epoch."""
        epochs = self.state.epochs
        if epoch < 0 or not epochs:
            return -1, -1
        if epoch == epochs[-1][1]:
            return epoch, self.log.log_end_offset
        later = [(start, term) for start, term in epochs if term > epoch]
        if not later:
            return -1, -1
        floor = [term for _, term in epochs if term <= epoch]
        return (floor[-1] if floor else epoch), later[0][0]

    def term(self, offset: int) -> int | None:
        if offset == self.log.log_start_offset - 1:
            return self.snapshot_meta().term
        if offset < self.log.log_start_offset or offset > self.last_index():
            return None
        return self.term_of(offset)

    def entry_at(self, offset: int) -> Entry | None:
        if offset < self.log.log_start_offset or offset > self.last_index():
            return None
        data = self.log.read(offset, 1).data
        entries = self._to_entries(data, offset)
        return entries[0] if entries else None

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        if lo < self.log.log_start_offset or lo > self.last_index():
            return []
        data = self.log.read(lo, max(max_bytes, 1), max_offset=hi).data
        return self._to_entries(data, lo)

    def _to_entries(self, data: bytes, lo: int) -> list[Entry]:
        out = []
        view = memoryview(data)
        for pos, header in iter_batches(data):
            if header.last_offset < lo:
                continue
            raw = view[pos : pos + header.size]
            if header.is_control:
                kind, payload = decode_control(raw)
                if kind != EntryKind.NORMAL:
                    out.append(Entry(header.base_offset, header.last_offset_delta + 1,
                                     header.leader_epoch, payload, kind))
                    continue
            out.append(Entry(header.base_offset, header.last_offset_delta + 1,
                             header.leader_epoch, bytes(raw)))
        return out

    def config_entries(self) -> list[Entry]:
        start = self.log.log_start_offset
        return [Entry(o, 1, self.term_of(o) or 0,
                      ConfigState(frozenset(v)).encode(), EntryKind.CONFIG)
                for o, v in self.state.configs if o >= start]

    # ----------------------------------------------------------- writes (the host)
    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        if first <= self.last_index():
            self.truncate(first)
        # One buffer for all the entries, each batch copied into it once (its offset and
        # epoch are then set in place): a copy per entry, a second to bytes and a third to
        # join them were a tenth of a broker's event loop under produce load.
        data = bytearray()
        now = self._clock()
        for e in entries:
            start = len(data)
            if e.kind == EntryKind.NORMAL:
                data += e.data
                self._note_start(e.index, e.data)
            else:
                data += encode_control(e.kind, e.data, now)
                if e.kind == EntryKind.CONFIG:
                    self.state.configs.append(
                        (e.index, sorted(ConfigState.decode(e.data).voters)))
            set_offset_and_epoch(data, start, e.index, e.term)
            self._note(e.index, e.term)
        # The log fsyncs by the topic's flush.messages; with flush.messages=1 the entries
        # are durable when this returns, before the follower acknowledges them.
        self.log.append_replicated(data, flush=not self.sync_behind)
        self._log_owed = self._log_owed or (self.sync_behind and self.log.flush_owed)
        self.state.scanned_to = self.log.log_end_offset
        if self.state.lost != NO_INDEX and self.state.scanned_to > self.state.lost:
            self.state.lost = NO_INDEX  # repaired (saved with the next state)
        if self.producers is not None:
            self.producers.on_append(data)
        self._apply_starts()

    def truncate(self, offset: int) -> None:
        s = self.state
        s.epochs = [(o, t) for o, t in s.epochs if o < offset]
        s.configs = [(o, v) for o, v in s.configs if o < offset]
        s.starts = [(o, v) for o, v in s.starts if o < offset]
        s.scanned_to = min(s.scanned_to, offset)
        # Write-ahead: the durable state must stop vouching for the terms at and after
        # offset before the log changes there, or a crash after new entries replace the
        # old ones would pair the new batches with the old terms.
        self.save(sync=True)
        if self.producers is not None:
            self.producers.truncate(offset)
        self.log.truncate_to(offset)

    def set_hard_state(self, hs: HardState) -> None:
        s = self.state
        if (hs.term, hs.vote, hs.commit) == (s.term, s.vote, s.commit):
            return
        vote_changed = (hs.term, hs.vote) != (s.term, s.vote)
        s.term, s.vote, s.commit = hs.term, hs.vote, hs.commit
        self._apply_starts()
        now = broker_clock.monotonic()
        if vote_changed or self.strict:
            # Strict: the commit index too, so that the high watermark a restarted
            # replica serves never goes back below what it already exposed.
            if self.journal is not None:
                self._journal_owed = self.journal.append([(self.journal_key, hs)])
            elif self.sync_behind:
                self._state_owed = self._state_json()
            else:
                self.save(sync=True)
            self._commit_saved_at = now
        elif now - self._commit_saved_at >= COMMIT_SAVE_INTERVAL_S:
            self._commit_saved_at = now
            if self.journal is None:
                self.save(sync=False)
                return
            self.journal.append([(self.journal_key, hs)])  # a hint: nobody waits for it
            if now - self._cache_saved_at >= STATE_CACHE_INTERVAL_S \
                    and self._cache_key() != self._cache_saved:
                self.save(sync=False)

    def _cache_key(self) -> tuple[int, ...]:
        """What the state file knows beyond the hard state, in short."""
        s = self.state
        return (s.scanned_to, s.lost, len(s.epochs), len(s.configs), len(s.starts))

    def take_sync(self) -> Callable[[], None] | None:
        """The fsyncs that the writes since the last call owe (sync_behind), as one call
        that may run in another thread before this group's next write; None if none."""
        log_owed, state, ticket = self._log_owed, self._state_owed, self._journal_owed
        self._log_owed, self._state_owed, self._journal_owed = False, None, 0
        if not log_owed and state is None and not ticket:
            return None
        journal = self.journal

        def sync() -> None:
            # The log first: a durable state never vouches for entries that are not.
            if log_owed:
                self.log.flush()
            if state is not None:
                self._write_state(state, sync=True)
            if ticket and journal is not None:
                journal.sync(ticket)

        return sync

    @property
    def strict(self) -> bool:
        """Fsync every Ready (flush.messages=1), not only by the topic's flush timers."""
        return self.log.config.flush_messages <= 1

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        meta = snapshot.meta
        start = meta.index + 1
        s = self.state
        # The snapshot's term is the term of offset start - 1, the new log start - 1.
        s.epochs = [(meta.index, meta.term)] if meta.term else []
        s.configs = []
        s.starts = []
        s.voters = sorted(meta.config.voters)
        s.scanned_to = start
        s.commit = max(s.commit, meta.index)
        if self.producers is not None:
            self.producers.reset(start)
        s.reset_to = start  # a crash before the reset completes is finished by _load
        self.save(sync=True)
        self.log.reset_to(start)
        s.reset_to = None
        self.save(sync=True)

    def compact(self, index: int, data: bytes) -> None:
        """Not supported: a partition log is trimmed by retention (whole segments), not by
        Raft snapshots of a state machine; a follower that falls below the leader's log
        start is sent an empty snapshot (see ``snapshot``) and resets its log there."""
        raise ValueError("partition logs are trimmed by retention, not by Raft snapshots "
                         f"(compact at {index} refused)")


def log_dir(log: PartitionLog) -> Path:
    return Path(log.directory)
