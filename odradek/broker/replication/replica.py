"""A partition replica whose log is a Raft group over the partition's replicas.

The leader validates a produce request's batches, checks idempotent producers' sequence
numbers, proposes one entry per new batch, and answers when the entries are committed
(acks=quorum) or stored locally (acks=leader); a retried batch it already has is answered
with its original offsets. Consumers read up to the high watermark, the commit index + 1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from odradek.broker import clock
from odradek.broker.errors import BrokerError
from odradek.broker.replication.producer_log import ProducerStateStore
from odradek.broker.replication.producer_state import (
    LeaderSequences,
    ProducerStateTable,
    SequenceError,
)
from odradek.raft import NotLeader, ProposalDropped, Ready, Role
from odradek.raft.node import RaftNode
from odradek.records import validate_batches
from odradek.records.batch import set_max_timestamp
from odradek.storage import AppendInfo, PartitionLog, ReadResult

LeaderAddress = Callable[[int], str | None]


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


class ReplicatedPartition:
    def __init__(self, topic: str, index: int, log: PartitionLog, node: RaftNode,
                 schedule: Callable[[], None], leader_address: LeaderAddress,
                 liveness_s: float = 1.0,
                 broker_alive: Callable[[int], bool] = lambda _: False,
                 producers: ProducerStateStore | None = None,
                 producer_epoch: Callable[[int], int | None] = lambda _: None) -> None:
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
        config = self.log.config
        headers = validate_batches(records, config.max_message_bytes)
        if quorum:
            self._check_in_sync(config.min_insync_replicas)
        try:
            originals = self._sequences.check(headers)
        except SequenceError as exc:
            code = (grpc.StatusCode.INVALID_ARGUMENT if exc.reason == "INVALID_RECORD"
                    else grpc.StatusCode.FAILED_PRECONDITION)
            raise BrokerError(code, exc.reason, f"partition {self.index} of topic "
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
            try:
                indices = self.node.propose_batch(items)
            except NotLeader:
                raise self.not_leader_error() from None
            except ProposalDropped as exc:
                raise BrokerError(grpc.StatusCode.UNAVAILABLE, "LEADER_NOT_AVAILABLE",
                                  f"the leader cannot take writes right now: {exc}",
                                  self._where()) from exc
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

    async def _wait_for(self, last: int, quorum: bool, timeout_s: float) -> None:
        """Until the offset is committed (quorum) or stored here (leader)."""
        if last < (self.high_watermark if quorum else self.log.log_end_offset):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(last, quorum, future))
        self._schedule()
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            raise BrokerError(
                grpc.StatusCode.UNAVAILABLE, "NOT_ENOUGH_REPLICAS",
                f"partition {self.index} of topic {self.topic!r} could not replicate the "
                f"write to a quorum within {timeout_s:.1f}s", self._where()) from None

    def in_sync_replicas(self) -> list[int]:
        """The leader and the followers it heard from recently."""
        now = clock.monotonic()
        node = self.node
        me = node.id

        def in_sync(v: int) -> bool:
            if v == me or now - self._heard.get(v, -1e9) <= self.liveness_s:
                return True
            progress = node.progress.get(v)
            return (progress is not None and progress.match >= node.commit_index
                    and self._broker_alive(v))

        return [v for v in sorted(node.config.voters) if in_sync(v)]

    def _check_in_sync(self, min_insync: int) -> None:
        voters = len(self.node.config.voters)
        needed = max(min_insync, voters // 2 + 1)
        live = len(self.in_sync_replicas())
        if live < needed:
            raise BrokerError(
                grpc.StatusCode.UNAVAILABLE, "NOT_ENOUGH_REPLICAS",
                f"partition {self.index} of topic {self.topic!r} has {live} of {voters} "
                f"replicas in sync; a write needs {needed} (a majority and "
                f"min.insync.replicas={min_insync})", self._where())

    # ---------------------------------------------------------------- Raft listener
    def heard_from(self, node_id: int) -> None:
        self._heard[node_id] = clock.monotonic()

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
                    p.future.set_result(None)
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

    # ------------------------------------------------------------------------ read
    def read(self, offset: int, max_bytes: int) -> ReadResult:
        self._check_open()
        hw = self.high_watermark
        start = self.log.log_start_offset
        if offset < start or offset > hw:
            raise BrokerError(
                grpc.StatusCode.OUT_OF_RANGE, "OFFSET_OUT_OF_RANGE",
                f"offset {offset} is out of range for partition {self.index} of topic "
                f"{self.topic!r}: valid offsets are {start} to {hw}",
                {"log_start_offset": str(start), "high_watermark": str(hw)})
        return self.log.read(offset, max_bytes, max_offset=hw)

    async def wait_for_append(self, timeout: float) -> None:
        event = self._appended
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass

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
        return BrokerError(grpc.StatusCode.UNAVAILABLE, "NOT_LEADER", message, meta)

    def _check_open(self) -> None:
        if self.closed:
            raise BrokerError(
                grpc.StatusCode.NOT_FOUND, "UNKNOWN_TOPIC_OR_PARTITION",
                f"partition {self.index} of topic {self.topic!r} is not hosted here any more",
                self._where())
