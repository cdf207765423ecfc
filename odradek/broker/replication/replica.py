"""A partition replica whose log is a Raft group over the partition's replicas.

The leader validates a produce request's batches, checks idempotent producers' sequence
numbers, proposes one entry per new batch, and answers when the entries are committed
(acks=quorum) or stored locally (acks=leader); a retried batch it already has is answered
with its original offsets. Consumers read up to the high watermark, the commit index + 1."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from odradek.broker import clock, regressions
from odradek.broker.errors import BrokerError
from odradek.broker.reasons import Reason, reason_of
from odradek.broker.replication.control import encode_log_start
from odradek.broker.replication.producer_log import ProducerStateStore
from odradek.broker.replication.producer_state import (
    LeaderSequences,
    ProducerStateTable,
    SequenceError,
)
from odradek.raft import NotLeader, ProposalDropped, Ready, Role
from odradek.raft.node import RaftNode
from odradek.raft.quorum import has_majority, majority
from odradek.records import validate_batches
from odradek.records.batch import set_max_timestamp
from odradek.storage import AppendInfo, CorruptBatchError, PartitionLog, ReadResult

LeaderAddress = Callable[[int], str | None]
# A follower that holds what the leader held this long ago is in sync (Kafka's
# replica.lag.time.max.ms, whose default is 30 s).
REPLICA_LAG_MAX_S = 10.0
LOG_END_SAMPLE_S = 0.1
# The batches of one append become one Raft entry, which must fit one Raft message
# (peers/raft_transport.py MAX_MESSAGE_BYTES): a larger one could never be replicated.
# Whatever the front end (a gRPC Produce, a Kafka partition's records).
MAX_APPEND_BYTES = 32 * 1024 * 1024


# Room kept for what a write brings along (index entries, a rolled segment's files, the
# Raft state file), so that a refused produce, not a failed persist, is what a full disk
# gives.
DISK_RESERVE_BYTES = 1 << 20


@dataclass(frozen=True)
class ProduceResult(AppendInfo):
    # The base offset of each batch of the request, in order (duplicates answered with
    # the offsets they were first stored at).
    batch_offsets: tuple[int, ...] = ()


@dataclass
class _Pending:
    last_offset: int
    quorum: bool
    future: asyncio.Future[None]
    # The Raft term of the entry written: a high watermark past last_offset means the
    # write committed only while the entry there is still of this term.
    term: int


class ReplicatedPartition:
    def __init__(self, topic: str, index: int, log: PartitionLog, node: RaftNode,
                 schedule: Callable[[], None], leader_address: LeaderAddress,
                 liveness_s: float = 1.0,
                 broker_alive: Callable[[int], bool] = lambda _: False,
                 producers: ProducerStateStore | None = None,
                 producer_epoch: Callable[[int], int | None] = lambda _: None,
                 fresh_since: Callable[[], float] = lambda: -math.inf,
                 lag_max_s: float = REPLICA_LAG_MAX_S) -> None:
        self.topic = topic
        self.index = index
        self.log = log
        self.node = node
        self._schedule = schedule
        self._leader_address = leader_address
        self._pending: list[_Pending] = []
        self._appended = asyncio.Event()
        self.high_watermark = min(node.commit_index + 1, log.log_end_offset)
        self.closed = False
        self.lock = asyncio.Lock()
        self.on_leader_change: Callable[[ReplicatedPartition], None] | None = None
        self._last_leader: int | None = None
        # A follower heard from within liveness_s counts as in sync for min.insync.replicas.
        self.liveness_s = liveness_s
        self._heard: dict[int, float] = {}
        # As leader: when each follower last acknowledged this term (time, term). A
        # majority within lease_s, after fresh_since() (the host's last stall), means no
        # other leader can have been elected: followers grant no vote within an election
        # timeout of hearing from their leader.
        self._acked: dict[int, tuple[float, int]] = {}
        self.lease_s = liveness_s / 2
        # (time, the leader's last offset then), a sample every LOG_END_SAMPLE_S while
        # leading: how far behind a follower may be and still count as in sync.
        self.lag_max_s = lag_max_s
        self._log_ends: deque[tuple[float, int]] = deque()
        self._led_since = -math.inf
        self._fresh_since = fresh_since
        # A quiesced group exchanges no messages; its caught-up followers count as in sync
        # while their brokers are alive (the transport's per-broker-pair signal).
        self._broker_alive = broker_alive
        self.producers = producers
        empty = ProducerStateTable()
        self._sequences = LeaderSequences(
            (lambda: producers.table) if producers is not None else (lambda: empty),
            producer_epoch)

    @property
    def leader(self) -> int | None:
        return self.node.leader

    @property
    def leader_term(self) -> int:
        return self.node.term

    # ---------------------------------------------------------------------- produce
    async def append(self, records: bytes, quorum: bool = True,
                     timeout_s: float = 30.0) -> ProduceResult:
        self._check_open()
        if not self.node.is_leader():
            raise self.not_leader_error()
        if len(records) > MAX_APPEND_BYTES:
            raise BrokerError(Reason.RECORD_TOO_LARGE, f"partition {self.index} of topic "
                              f"{self.topic!r} takes at most {MAX_APPEND_BYTES} bytes of "
                              f"batches per request; this one has {len(records)}",
                              {**self._where(), "limit": str(MAX_APPEND_BYTES)})
        config = self.log.config
        headers = validate_batches(records, config.max_message_bytes)
        if quorum:
            self._check_in_sync(config.min_insync_replicas)
        self._check_disk(len(records))
        try:
            originals = self._sequences.check(headers)
        except SequenceError as exc:
            raise BrokerError(reason_of(exc.reason), f"partition {self.index} of topic "
                              f"{self.topic!r}: {exc.message}",
                              {**self._where(), **exc.metadata}) from None
        append_time = -1
        buf = bytearray(records)
        if config.log_append_time:
            append_time = clock.time_ms()
        items = []
        fresh = []
        pos = 0
        for header, original in zip(headers, originals, strict=True):
            if original is None:
                if append_time >= 0:
                    set_max_timestamp(buf, pos, append_time, True)
                items.append((bytes(buf[pos : pos + header.size]), header.record_count))
                fresh.append(header)
            pos += header.size
        offsets = [o.base_offset for o in originals if o is not None]
        if items:
            indices = self._propose(items)
            self._sequences.proposed(fresh, indices)
            offsets += indices
            last = indices[-1] + fresh[-1].record_count - 1
        else:
            last = originals[-1].last_offset  # type: ignore[union-attr]
        await self._wait_for(last, quorum, timeout_s)
        max_ts = max(h.max_timestamp for h in headers)
        first = offsets[0]
        return ProduceResult(first, last, append_time,
                             append_time if append_time >= 0 else max_ts, tuple(offsets))

    async def delete_records(self, offset: int, timeout_s: float = 30.0) -> int:
        """Kafka's DeleteRecords: moves the log start offset to `offset` (-1: the high
        watermark) on every replica, through the Raft log, and returns the new start."""
        self.check_high_watermark_known()
        hw = self.high_watermark
        target = hw if offset == -1 else offset
        if target < 0 or target > hw:
            raise BrokerError(Reason.OFFSET_OUT_OF_RANGE,
                f"cannot delete records of partition {self.index} of topic {self.topic!r} "
                f"before offset {offset}: it must lie between 0 and the high watermark "
                f"{hw} (or be -1 for the high watermark)",
                {**self._where(), "high_watermark": str(hw)})
        if target <= self.log.log_start_offset:
            return self.log.log_start_offset
        index = self._propose([(encode_log_start(target, clock.time_ms()), 1)])[0]
        await self._wait_for(index, True, timeout_s)
        return max(target, self.log.log_start_offset)

    def _propose(self, items: list[tuple[bytes, int]]) -> list[int]:
        try:
            return self.node.propose_batch(items)
        except NotLeader:
            raise self.not_leader_error() from None
        except ProposalDropped as exc:
            raise BrokerError(Reason.LEADER_NOT_AVAILABLE,
                              f"the leader cannot take writes right now: {exc}",
                              self._where()) from exc

    async def _wait_for(self, last: int, quorum: bool, timeout_s: float) -> None:
        """Until the offset is committed (quorum) or stored here (leader)."""
        if last < (self.high_watermark if quorum else self.log.log_end_offset):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        term = self.node.log.term(last)
        self._pending.append(_Pending(last, quorum, future,
                                      self.node.term if term is None else term))
        self._schedule()
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            raise BrokerError(Reason.NOT_ENOUGH_REPLICAS,
                f"partition {self.index} of topic {self.topic!r} could not replicate the "
                f"write to a quorum within {timeout_s:.1f}s", self._where()) from None
        finally:
            # Nobody waits any more (a timeout, or the caller went away): an outcome set
            # later would be an exception that is never retrieved.
            future.cancel()

    def in_sync_replicas(self) -> list[int]:
        """The leader and the followers that are alive and caught up, as Kafka's ISR: a
        follower is caught up when it holds what the leader held lag_max_s ago (so under
        steady writes a follower a few batches behind the log end stays in sync)."""
        now = clock.monotonic()
        node = self.node
        me = node.id
        floor = self._log_end_since(now - self.lag_max_s)

        # A new leader learns where its followers are from their first answers: until
        # then, for up to lag_max_s, those it hears from count (as Kafka's new leader
        # starts from the ISR it was given).
        young = now - self._led_since < self.lag_max_s
        term = node.term

        def in_sync(v: int) -> bool:
            if v == me:
                return True
            progress = node.progress.get(v)
            if progress is None:
                return False
            unknown = young and self._acked.get(v, (0.0, -1))[1] != term
            if progress.match < floor and not unknown:
                return False
            # A quiet group exchanges nothing: its brokers' liveness stands in.
            return now - self._heard.get(v, -math.inf) <= self.liveness_s or self._broker_alive(v)

        return [v for v in sorted(node.config.voters) if in_sync(v)]

    def _log_end_since(self, cutoff: float) -> int:
        """The leader's last offset as of cutoff (or as of when it became leader)."""
        samples = self._log_ends
        while len(samples) >= 2 and samples[1][0] <= cutoff:
            samples.popleft()
        return samples[0][1] if samples else self.node.last_index

    def _sample_log_end(self) -> None:
        now = clock.monotonic()
        samples = self._log_ends
        if not samples:
            self._led_since = now
        if not samples or now - samples[-1][0] >= LOG_END_SAMPLE_S:
            samples.append((now, self.node.last_index))

    def _check_disk(self, size: int) -> None:
        """Refuses a write the disk cannot take. Without this the leader's append failed
        with ENOSPC only when Raft persisted it, after the request was accepted: the
        producer waited for its timeout and never learned why."""
        try:
            stat = os.statvfs(self.log.directory)
        except OSError:
            return  # no answer about space: let the write itself tell
        free = stat.f_bavail * stat.f_frsize
        if free < size + DISK_RESERVE_BYTES:
            raise BrokerError(Reason.DISK_FULL,
                f"partition {self.index} of topic {self.topic!r}: the broker's disk is "
                f"full ({free} bytes free); writes resume when space is freed",
                self._where())

    def _check_in_sync(self, min_insync: int) -> None:
        voters = len(self.node.config.voters)
        needed = max(min_insync, majority(voters))
        live = len(self.in_sync_replicas())
        if live < needed:
            raise BrokerError(Reason.NOT_ENOUGH_REPLICAS,
                f"partition {self.index} of topic {self.topic!r} has {live} of {voters} "
                f"replicas in sync; a write needs {needed} (a majority and "
                f"min.insync.replicas={min_insync})", self._where())

    def high_watermark_known(self) -> bool:
        """Has this leader's high watermark reached its own term's first entry? Before, it
        may lag the high watermark that an earlier leader exposed."""
        node = self.node
        return node.is_leader() and self.high_watermark > node.term_start

    def leadership_confirmed(self) -> bool:
        """A leader sure of its high watermark that a majority acknowledged recently: no
        later leader can exist, so its log end is the partition's log end."""
        if not self.high_watermark_known():
            return False
        node = self.node
        since = max(clock.monotonic() - self.lease_s, self._fresh_since())
        term = node.term

        def acknowledged(v: int) -> bool:
            at, in_term = self._acked.get(v, (-math.inf, -1))
            return v == node.id or (in_term == term and at >= since)

        return has_majority(node.config.voters, acknowledged)

    def check_high_watermark_known(self) -> None:
        """For answers that report the high watermark (ListOffsets): a new leader's may lag
        the one consumers already saw, and they would go back."""
        if not self.node.is_leader():
            raise self.not_leader_error()
        if not self.high_watermark_known():
            raise BrokerError(Reason.OFFSET_NOT_AVAILABLE,
                f"partition {self.index} of topic {self.topic!r} has a new leader that is "
                "still catching up its high watermark; retry shortly", self._where())

    # ---------------------------------------------------------------- Raft listener
    def heard_from(self, node_id: int) -> None:
        self._heard[node_id] = clock.monotonic()

    def acknowledged(self, node_id: int) -> None:
        self._acked[node_id] = (clock.monotonic(), self.node.term)

    def peer_lost(self, node_id: int) -> None:
        """node_id's broker is gone (its connection broke and it refuses new ones): its
        last acknowledgement no longer holds up this leader's lease. Followers that saw
        the same break may elect a successor before the lease would have run out."""
        acked = self._acked.get(node_id)
        if acked is not None:
            self._acked[node_id] = (-math.inf, acked[1])

    def on_persisted(self, ready: Ready) -> None:
        if not ready.entries_to_persist:
            return
        stored = ready.entries_to_persist[-1].last
        self._sequences.stored(stored)
        for p in self._pending:
            if not p.quorum and p.last_offset <= stored and not p.future.done():
                p.future.set_result(None)

    def on_ready(self, ready: Ready) -> None:
        if ready.soft_state.role != Role.LEADER:
            self._sequences.clear()
            self._log_ends.clear()
        else:
            self._sample_log_end()
        hw = min(ready.commit_index + 1, self.log.log_end_offset)
        if hw > self.high_watermark:
            self.high_watermark = hw
            self._wake()
        if self._pending:
            keep = []
            for p in self._pending:
                if p.future.done():
                    continue
                if p.last_offset < self.high_watermark:
                    if self._still_ours(p):
                        p.future.set_result(None)
                    else:
                        p.future.set_exception(self.not_leader_error())
                elif ready.soft_state.role != Role.LEADER:
                    p.future.set_exception(self.not_leader_error())
                else:
                    keep.append(p)
            self._pending = keep
        leader = ready.soft_state.leader
        if leader != self._last_leader:
            self._last_leader = leader
            if self.on_leader_change is not None:
                self.on_leader_change(self)

    def _still_ours(self, p: _Pending) -> bool:
        """Is the committed entry at the write's offset the one written? A leader deposed
        while its entry was not yet committed may learn, in the same Ready that makes it a
        follower, a high watermark past that offset, over its successor's entries (found
        by the whole-broker simulation: the write was acknowledged and lost)."""
        if regressions.PENDING_WITHOUT_TERM in regressions.reintroduced:
            return True
        return self.node.log.term(p.last_offset) == p.term

    # ------------------------------------------------------------------------ read
    def read(self, offset: int, max_bytes: int) -> ReadResult:
        """Committed batches from offset. Above the high watermark the answer is empty (a
        consumer waits there) unless this replica is sure that the offset lies beyond the
        partition's log: a deposed leader, or a new one whose high watermark has not caught
        up, may be behind what consumers have already read, and OFFSET_OUT_OF_RANGE makes
        them reset their position."""
        self._check_open()
        hw = self.high_watermark
        if offset > hw and regressions.UNSURE_LEADER_OUT_OF_RANGE not in regressions.reintroduced:
            if offset <= self.log.log_end_offset:
                return ReadResult(b"", offset)
            if not self.leadership_confirmed():
                self._schedule()  # a quiet group's heartbeats bring the acknowledgements
                return ReadResult(b"", offset)
        if offset > hw or offset < self.log.log_start_offset:
            raise self._out_of_range(offset)
        try:
            return self.log.read(offset, max_bytes, max_offset=hw)
        except CorruptBatchError as exc:
            # Never serve it; the log's observer has the replica repaired (leadership
            # moves away first), so a retry soon reaches a healthy leader.
            raise BrokerError(Reason.KAFKA_STORAGE_ERROR,
                f"partition {self.index} of topic {self.topic!r}: the batch at offset "
                f"{exc.offset} failed its CRC check on this broker, which is repairing "
                f"its replica; retry shortly", {**self._where(),
                                               "offset": str(exc.offset)}) from None

    def replace_node(self, node: RaftNode) -> None:
        """Takes over a new RaftNode for the same log (made after a corrupt batch was cut):
        writes waiting on the old one are told NOT_LEADER, and the high watermark comes
        down to the log end, since a replica exposes only what it holds."""
        for p in self._pending:
            if not p.future.done():
                p.future.set_exception(self.not_leader_error())
        self._pending = []
        self.node = node
        self._sequences.clear()
        self._log_ends.clear()
        self._acked.clear()
        self.high_watermark = min(self.high_watermark, self.log.log_end_offset)
        self._last_leader = None
        self._wake()

    def _out_of_range(self, offset: int) -> BrokerError:
        start, end = self.log.log_start_offset, self.log.log_end_offset
        return BrokerError(Reason.OFFSET_OUT_OF_RANGE,
            f"offset {offset} is out of range for partition {self.index} of topic "
            f"{self.topic!r}: valid offsets are {start} to {end}",
            {"log_start_offset": str(start), "high_watermark": str(self.high_watermark),
             "log_end_offset": str(end)})

    async def wait_for_append(self, timeout: float) -> None:
        event = self._appended
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    def close(self, delete: bool = False) -> None:
        self.closed = True
        for p in self._pending:
            if not p.future.done():
                p.future.set_exception(self.not_leader_error())
        self._pending = []
        if delete:
            self.log.delete()
        else:
            if self.producers is not None:
                self.producers.save()  # the next start scans nothing
            self.log.close()
        self._wake()

    # --------------------------------------------------------------------- helpers
    def _wake(self) -> None:
        event = self._appended
        self._appended = asyncio.Event()
        event.set()

    def _where(self) -> dict[str, str]:
        return {"topic": self.topic, "partition": str(self.index)}

    def not_leader_error(self) -> BrokerError:
        leader = self.node.leader
        meta = self._where()
        address = self._leader_address(leader) if leader is not None else None
        if leader is not None and address is not None:
            meta["leader_id"] = str(leader)
            meta["leader"] = address
            message = (f"this broker is not the leader of partition {self.index} of topic "
                       f"{self.topic!r}; the leader is broker {leader} at {address}")
        else:
            message = (f"partition {self.index} of topic {self.topic!r} has no leader right "
                       f"now; retry shortly")
        return BrokerError(Reason.NOT_LEADER, message, meta)

    def _check_open(self) -> None:
        if self.closed:
            raise BrokerError(Reason.UNKNOWN_TOPIC_OR_PARTITION,
                f"partition {self.index} of topic {self.topic!r} is not hosted here any more",
                self._where())
