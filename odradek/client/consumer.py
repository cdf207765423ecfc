"""The asynchronous consumer: manual assignment or group subscription, one prefetch in
flight per partition."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import NamedTuple

from odradek.client.connection import Cluster
from odradek.client.decoder import ConsumerRecord as ConsumerRecord
from odradek.client.decoder import decode_fetched
from odradek.client.errors import (
    CommitFailedError,
    CorruptRecordError,
    OdradekError,
    OffsetOutOfRangeError,
)
from odradek.client.groups import GroupClient
from odradek.client.membership import MemberConfig, Membership
from odradek.client.options import ConnectionOptions, client_cluster
from odradek.records import InvalidRecordError as _BatchError
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc

log = logging.getLogger("odradek.client")


class TopicPartition(NamedTuple):
    topic: str
    partition: int


RebalanceCallback = Callable[[list[TopicPartition]], Awaitable[None] | None]


_RESETS = {"earliest": pb.OFFSET_SPEC_EARLIEST, "latest": pb.OFFSET_SPEC_LATEST, "none": None}


class _Chunk:
    """The records of one fetch response, handed out by poll in order."""

    __slots__ = ("records", "index", "next_offset")

    def __init__(self, records: list[ConsumerRecord], next_offset: int) -> None:
        self.records = records
        self.index = 0
        self.next_offset = next_offset


class _State:
    __slots__ = ("tp", "position", "fetch_offset", "reset", "gen", "task", "buffer", "space",
                 "error", "high_watermark", "seen_high_watermark")

    def __init__(self, tp: TopicPartition, reset: str) -> None:
        self.tp = tp
        self.position: int | None = None  # offset of the next record poll returns
        self.fetch_offset: int | None = None  # where the next fetch starts
        self.reset: str | None = reset  # pending offset reset (earliest/latest)
        self.gen = 0
        self.task: asyncio.Task[None] | None = None
        self.buffer: deque[_Chunk] = deque()
        self.space = asyncio.Event()
        self.error: OdradekError | None = None
        self.high_watermark = -1
        # The highest high watermark a leader answered: offsets below it are committed,
        # and a broker that calls one of them out of range is not the current leader.
        self.seen_high_watermark = -1


# How many out-of-range answers for a committed offset (one this consumer saw below a high
# watermark) are taken as a stale leader's before the position is reset after all (say
# the topic was deleted and made again under its name).
STALE_OUT_OF_RANGE_RETRIES = 20


def _contradicts(err: OffsetOutOfRangeError, st: _State, offset: int) -> bool:
    """Does the out-of-range answer call an offset out of range that a leader has already
    shown to be committed (at or below a high watermark it answered)?"""
    try:
        start = int(err.metadata.get("log_start_offset", "0"))
    except ValueError:
        start = 0
    return start <= offset <= st.seen_high_watermark


def decode_records(
    tp: TopicPartition, data: bytes, start: int, verify: bool = True,
) -> tuple[list[ConsumerRecord], int | None]:
    """Records at or after `start` in the batches of data (control batches skipped), and
    the offset after the last whole batch (None when there is none)."""
    try:
        return decode_fetched(tp.topic, tp.partition, data, start, verify)
    except _BatchError as exc:
        raise CorruptRecordError(
            f"{tp.topic}-{tp.partition}: fetched a bad batch near offset {start}: {exc}",
            exc.reason, metadata={"topic": tp.topic, "partition": str(tp.partition)}) from None


class Consumer:
    """Reads assigned partitions. Use as `async with Consumer(...) as c:`.

    `assign()` the partitions, optionally `seek*()`, then `await poll()` repeatedly.
    A partition with no position starts at auto_offset_reset (earliest or latest);
    with "none", poll raises OffsetOutOfRangeError instead.

    With a group_id, `subscribe()` instead: the group's coordinator assigns partitions
    (rebalance callbacks run inside poll), each starts at the group's committed offset,
    and positions are committed every auto_commit_interval_ms, before a partition is given
    up and on close (unless enable_auto_commit is off: then `commit()` yourself)."""

    def __init__(
        self,
        bootstrap: str | Sequence[str] | None = None,
        *,
        max_bytes: int = 4 * 1024 * 1024,
        fetch_max_wait_ms: int = 500,
        fetch_min_bytes: int = 1,
        auto_offset_reset: str = "latest",
        max_poll_records: int = 10_000,
        request_timeout_ms: int = 30_000,
        retry_backoff_ms: int = 100,
        retry_backoff_max_ms: int = 1000,
        check_crcs: bool = True,
        tls: bool | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        username: str | None = None,
        password: str | None = None,
        cluster: Cluster | None = None,
        connection: ConnectionOptions | None = None,
        group_id: str | None = None,
        group_instance_id: str = "",
        client_id: str = "",
        session_timeout_ms: int = 10_000,
        max_poll_interval_ms: int = 300_000,
        assignment_strategy: str = "sticky",
        enable_auto_commit: bool = True,
        auto_commit_interval_ms: int = 5_000,
    ) -> None:
        if auto_offset_reset not in _RESETS:
            raise ValueError(
                f"auto_offset_reset must be earliest, latest or none, not {auto_offset_reset!r}")
        self._cluster = client_cluster(
            bootstrap, request_timeout_ms, cluster, connection,
            ConnectionOptions(tls, tls_ca, tls_cert, tls_key, username, password))
        self._owns_cluster = cluster is None
        self._max_bytes = max_bytes
        self._max_wait_ms = fetch_max_wait_ms
        self._min_bytes = fetch_min_bytes
        self._reset = auto_offset_reset
        self._max_poll_records = max_poll_records
        self._request_timeout = request_timeout_ms / 1000
        self._backoff = retry_backoff_ms / 1000
        self._backoff_max = max(retry_backoff_max_ms, retry_backoff_ms) / 1000
        self._check_crcs = check_crcs
        self._states: dict[TopicPartition, _State] = {}
        self._wakeup: asyncio.Event | None = None
        self._rotate = 0
        self._closed = False
        self._group_id = group_id
        self._groups = GroupClient(self._cluster)
        self._member_config = MemberConfig(
            group_id or "", group_instance_id, client_id, session_timeout_ms,
            max_poll_interval_ms, assignment_strategy)
        self._auto_commit = enable_auto_commit
        self._auto_commit_s = auto_commit_interval_ms / 1000
        self._membership: Membership | None = None
        self._subscription: list[str] | re.Pattern[str] | None = None
        self._on_assigned: RebalanceCallback | None = None
        self._on_revoked: RebalanceCallback | None = None
        self._on_lost: RebalanceCallback | None = None
        self._pending: tuple[int, set[TopicPartition]] | None = None
        self._lost = False
        self._group_error: OdradekError | None = None
        self._generation = -1
        self._last_poll = time.monotonic()
        self._next_commit = time.monotonic() + self._auto_commit_s

    @property
    def cluster(self) -> Cluster:
        return self._cluster

    async def __aenter__(self) -> Consumer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- assignment and positions -----------------------------------------------------------

    def assign(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Replaces the assignment. Partitions kept keep their positions."""
        if self._subscription is not None:
            raise ValueError("this consumer subscribed to a group: it cannot also assign")
        self._set_partitions(partitions)

    def _set_partitions(self, partitions: Iterable[tuple[str, int]]) -> None:
        wanted = [TopicPartition(t, p) for t, p in partitions]
        for tp, st in list(self._states.items()):
            if tp not in wanted:
                self._stop(st)
                del self._states[tp]
        for tp in wanted:
            if tp not in self._states:
                self._states[tp] = _State(tp, self._reset)

    def assignment(self) -> set[TopicPartition]:
        return set(self._states)

    async def partitions_for(self, topic: str) -> list[TopicPartition]:
        info = await self._cluster.topic(topic, refresh=True)
        return [TopicPartition(topic, p) for p in range(info.num_partitions)]

    def _state(self, tp: tuple[str, int]) -> _State:
        st = self._states.get(TopicPartition(*tp))
        if st is None:
            raise ValueError(f"{tp[0]}-{tp[1]} is not assigned")
        return st

    def _stop(self, st: _State) -> None:
        st.gen += 1
        if st.task is not None:
            st.task.cancel()
            st.task = None
        st.buffer.clear()
        st.error = None

    def seek(self, tp: tuple[str, int], offset: int) -> None:
        """The next poll returns records of tp from offset on."""
        if offset < 0:
            raise ValueError("offset must be >= 0")
        st = self._state(tp)
        self._stop(st)
        st.position = st.fetch_offset = offset
        st.reset = None

    def _seek_reset(self, tps: Sequence[tuple[str, int]], reset: str) -> None:
        for tp in tps or list(self._states):
            st = self._state(tp)
            self._stop(st)
            st.position = st.fetch_offset = None
            st.reset = reset

    async def seek_to_beginning(self, *tps: tuple[str, int]) -> None:
        """Moves tps (default: all assigned) to their earliest offsets."""
        self._seek_reset(tps, "earliest")
        await self._resolve_resets()

    async def seek_to_end(self, *tps: tuple[str, int]) -> None:
        """Moves tps (default: all assigned) past their last records."""
        self._seek_reset(tps, "latest")
        await self._resolve_resets()

    async def seek_to_timestamp(self, tp: tuple[str, int], timestamp_ms: int) -> int:
        """Moves tp to the first record whose timestamp is at or after timestamp_ms (or to
        the end when there is none); returns the new position."""
        resp = await self._cluster.list_offsets(
            tp[0], tp[1], pb.OFFSET_SPEC_TIMESTAMP, timestamp_ms)
        self.seek(tp, resp.offset)
        return int(resp.offset)

    async def position(self, tp: tuple[str, int]) -> int:
        st = self._state(tp)
        if st.position is None:
            await self._resolve_resets()
        assert st.position is not None
        return st.position

    async def beginning_offsets(self, tps: Iterable[tuple[str, int]]) -> dict[TopicPartition, int]:
        return await self._offsets(tps, pb.OFFSET_SPEC_EARLIEST)

    async def end_offsets(self, tps: Iterable[tuple[str, int]]) -> dict[TopicPartition, int]:
        """The high watermark of each partition: the offset after its last visible record."""
        return await self._offsets(tps, pb.OFFSET_SPEC_LATEST)

    async def _offsets(
        self, tps: Iterable[tuple[str, int]], spec: int,
    ) -> dict[TopicPartition, int]:
        keys = [TopicPartition(*tp) for tp in tps]
        resps = await asyncio.gather(
            *(self._cluster.list_offsets(tp.topic, tp.partition, spec) for tp in keys))
        return {tp: int(r.offset) for tp, r in zip(keys, resps, strict=True)}

    async def _resolve_resets(self) -> None:
        todo = [st for st in self._states.values() if st.position is None]
        if not todo:
            return
        for st in todo:
            if st.reset is None or _RESETS.get(st.reset) is None:
                raise OffsetOutOfRangeError(
                    f"{st.tp.topic}-{st.tp.partition} has no position and auto_offset_reset "
                    "is none: seek first", metadata={"topic": st.tp.topic})
        gens = [st.gen for st in todo]
        resps = await asyncio.gather(*(
            self._cluster.list_offsets(st.tp.topic, st.tp.partition, _RESETS[st.reset or ""] or 0)
            for st in todo))
        for st, gen, resp in zip(todo, gens, resps, strict=True):
            if st.gen == gen and st.position is None:  # no seek meanwhile
                st.position = st.fetch_offset = int(resp.offset)
                st.reset = None

    # -- fetching --------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def _ensure_fetchers(self) -> None:
        for st in self._states.values():
            if st.task is None and st.error is None and st.fetch_offset is not None:
                st.task = asyncio.ensure_future(self._fetcher(st, st.gen))

    async def _fetcher(self, st: _State, gen: int) -> None:
        tp = st.tp
        cluster = self._cluster
        attempt = stale_answers = 0
        try:
            while st.gen == gen:
                if len(st.buffer) >= 2:  # one response buffered, one more prefetched
                    st.space.clear()
                    await st.space.wait()
                    continue
                offset = st.fetch_offset
                assert offset is not None
                request = pb.FetchRequest(
                    topic=tp.topic, partition=tp.partition, offset=offset,
                    max_bytes=self._max_bytes, max_wait_ms=self._max_wait_ms,
                    min_bytes=self._min_bytes)
                started = time.monotonic()
                try:
                    resp = await cluster.leader_call(
                        tp.topic, tp.partition, self._fetch_call(request),
                        timeout=None, backoff=self._backoff, backoff_max=self._backoff_max)
                except OdradekError as err:
                    if st.gen != gen:
                        return
                    if (isinstance(err, OffsetOutOfRangeError) and _contradicts(err, st, offset)
                            and stale_answers < STALE_OUT_OF_RANGE_RETRIES):
                        # Not authoritative: follow the partition's current leader.
                        stale_answers += 1
                        await asyncio.sleep(min(self._backoff * stale_answers,
                                                self._backoff_max))
                        await cluster.forget_leader(tp.topic, tp.partition)
                        continue
                    if isinstance(err, OffsetOutOfRangeError) and self._reset != "none":
                        attempt += 1
                        if attempt > 1:
                            await asyncio.sleep(min(self._backoff * attempt, self._backoff_max))
                        target = await cluster.list_offsets(
                            tp.topic, tp.partition, _RESETS[self._reset] or 0, timeout=None)
                        if st.gen != gen:
                            return
                        st.fetch_offset = int(target.offset)
                        st.buffer.append(_Chunk([], int(target.offset)))
                        self._wake()
                        continue
                    st.error = err
                    self._wake()
                    return
                if st.gen != gen:
                    return
                attempt = stale_answers = 0
                records, next_offset = decode_records(tp, resp.records, offset, self._check_crcs)
                if next_offset is None:
                    next_offset = max(offset, resp.next_offset)
                next_offset = max(next_offset, offset)
                st.high_watermark = resp.high_watermark
                st.seen_high_watermark = max(st.seen_high_watermark, resp.high_watermark)
                if records or next_offset != offset:
                    st.fetch_offset = next_offset
                    st.buffer.append(_Chunk(records, next_offset))
                    self._wake()
                elif time.monotonic() - started < self._max_wait_ms / 2000:
                    # Nothing new and the broker did not wait: do not spin.
                    await asyncio.sleep(min(0.05, self._max_wait_ms / 1000))
        except asyncio.CancelledError:
            raise
        except OdradekError as err:
            if st.gen == gen:
                st.error = err
                self._wake()
        finally:
            if st.gen == gen:
                st.task = None

    def _fetch_call(
        self, request: pb.FetchRequest,
    ) -> Callable[[pb_grpc.BrokerStub], Awaitable[pb.FetchResponse]]:
        timeout = self._request_timeout + self._max_wait_ms / 1000

        async def call(stub: pb_grpc.BrokerStub) -> pb.FetchResponse:
            resp: pb.FetchResponse = await stub.Fetch(request, timeout=timeout)
            return resp

        return call

    # -- polling ---------------------------------------------------------------------------

    async def poll(
        self, timeout_ms: float = 0, max_records: int | None = None,
    ) -> list[ConsumerRecord]:
        """Records fetched since the last poll, in offset order per partition; waits up
        to timeout_ms for some. Raises the first non-retriable fetch error."""
        if self._closed:
            raise OdradekError("the consumer is closed", "CLIENT_CLOSED")
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        limit = max_records or self._max_poll_records
        deadline = time.monotonic() + timeout_ms / 1000
        if self._subscription is not None:
            await self._group_poll()
        await self._resolve_resets()
        while True:
            if self._pending is not None or self._lost:
                await self._group_poll()
                await self._resolve_resets()
            self._ensure_fetchers()
            for st in self._states.values():
                if st.error is not None and not st.buffer:
                    err, st.error = st.error, None
                    raise err
            records = self._take(limit)
            if records:
                return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return records
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return []

    def _take(self, limit: int) -> list[ConsumerRecord]:
        out: list[ConsumerRecord] = []
        states = list(self._states.values())
        if not states:
            return out
        self._rotate = (self._rotate + 1) % len(states)
        for st in states[self._rotate :] + states[: self._rotate]:
            buf = st.buffer
            while buf and len(out) < limit:
                chunk = buf[0]
                want = limit - len(out)
                if chunk.index == 0 and len(chunk.records) <= want:
                    out.extend(chunk.records)
                else:
                    part = chunk.records[chunk.index : chunk.index + want]
                    out.extend(part)
                    chunk.index += len(part)
                    if chunk.index < len(chunk.records):
                        st.position = part[-1].offset + 1
                        break
                buf.popleft()
                st.position = chunk.next_offset
                st.space.set()
            if len(out) >= limit:
                break
        return out

    async def records(self, timeout_ms: float = 1000) -> AsyncIterator[ConsumerRecord]:
        """Every record, forever: `async for r in consumer.records(): ...`."""
        while True:
            for record in await self.poll(timeout_ms):
                yield record

    def high_watermark(self, tp: tuple[str, int]) -> int:
        """The high watermark seen in the last fetch of tp (-1 before the first)."""
        return self._state(tp).high_watermark

    async def close(self) -> None:
        """Commits (with auto commit), calls on_revoked with the partitions it owns (as
        Kafka's close: the application flushes what it keeps per partition) and leaves the
        group (a static member does not leave: its partitions wait a session timeout for
        it), then stops."""
        if self._closed:
            return
        if self._membership is not None:
            owned = sorted(self._states)
            if self._auto_commit and self._group_error is None:
                await self._commit_quietly(set(owned))
            try:
                if owned and self._group_error is None:
                    await _call(self._on_revoked, owned)
            finally:
                await self._membership.stop(leave=not self._member_config.instance_id)
        self._closed = True
        tasks = [st.task for st in self._states.values() if st.task is not None]
        for st in self._states.values():
            self._stop(st)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._owns_cluster:
            await self._cluster.close()

    # -- groups ----------------------------------------------------------------------------

    def subscribe(
        self, topics: Iterable[str] | str | re.Pattern[str], *,
        on_assigned: RebalanceCallback | None = None,
        on_revoked: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        """Joins the group (at the next poll) for topics: names or a compiled pattern that
        topic names must match in full (new matching topics are picked up). on_revoked runs
        before partitions are given up (after the auto commit), on_assigned after new ones
        are added, on_lost (default on_revoked) when the group dropped this member."""
        if not self._group_id:
            raise ValueError("subscribe needs a group_id")
        if self._states and self._subscription is None:
            raise ValueError("this consumer has a manual assignment: it cannot also subscribe")
        if isinstance(topics, str):
            topics = [topics]
        self._subscription = topics if isinstance(topics, re.Pattern) else sorted(set(topics))
        if not self._subscription:
            raise ValueError("subscribe to at least one topic")
        self._on_assigned, self._on_revoked = on_assigned, on_revoked
        self._on_lost = on_lost or on_revoked

    @property
    def member_id(self) -> str:
        return self._membership.member_id if self._membership is not None else ""

    @property
    def refused_topics(self) -> frozenset[str]:
        """Subscribed topics the group coordinator did not assign because this principal
        may not describe them (also logged as a warning)."""
        return self._membership.refused_topics if self._membership is not None \
            else frozenset()

    @property
    def generation(self) -> int:
        return self._generation

    async def _subscribed_topics(self) -> list[str]:
        sub = self._subscription
        if not isinstance(sub, re.Pattern):
            return list(sub or [])
        meta = await self._cluster.refresh()
        return sorted(t.name for t in meta.topics if sub.fullmatch(t.name)
                      and not t.name.startswith("__"))

    # MembershipListener: called on the event loop; poll applies what they record.
    def assigned(self, generation: int, partitions: set[tuple[str, int]]) -> None:
        self._pending = (generation, {TopicPartition(*tp) for tp in partitions})
        self._wake()

    def lost(self) -> None:
        self._lost = True
        self._pending = None
        self._wake()

    def failed(self, error: OdradekError) -> None:
        self._group_error = error
        self._wake()

    async def _group_poll(self) -> None:
        self._last_poll = time.monotonic()
        if self._membership is None:
            self._membership = Membership(
                self._groups, self._member_config, self._subscribed_topics, self,
                lambda: int((time.monotonic() - self._last_poll) * 1000))
            self._membership.start()
        self._membership.polled()
        if self._group_error is not None:
            raise self._group_error
        if self._lost:
            self._lost = False
            lost = sorted(self._states)
            self._set_partitions([])
            if lost:
                await _call(self._on_lost, lost)
        while self._pending is not None:
            pending, self._pending = self._pending, None
            try:
                await self._apply_assignment(*pending)
            except BaseException:
                # Applying is idempotent: the next poll tries again (unless a newer
                # assignment arrived meanwhile), so the change is never dropped.
                if self._pending is None:
                    self._pending = pending
                raise
        if self._auto_commit and time.monotonic() >= self._next_commit:
            self._next_commit = time.monotonic() + self._auto_commit_s
            await self._commit_quietly(set(self._states))

    async def _apply_assignment(self, generation: int, target: set[TopicPartition]) -> None:
        current = set(self._states)
        revoked = sorted(current - target)
        if revoked:
            if self._auto_commit:
                await self._commit_quietly(set(revoked))
            await _call(self._on_revoked, revoked)
            self._set_partitions(current - set(revoked))
        added = sorted(target - current)
        self._generation = generation
        if added:
            committed = await self._groups.committed(self._member_config.group_id, added)
            self._set_partitions(set(self._states) | set(added))
            for tp in added:
                offset = committed.get(tp)
                if offset is not None:
                    st = self._states[tp]
                    st.position = st.fetch_offset = offset
                    st.reset = None
            await _call(self._on_assigned, added)
        assert self._membership is not None
        self._membership.acknowledge(generation)

    def _positions(self, tps: set[TopicPartition]) -> dict[tuple[str, int], int]:
        return {tp: st.position for tp in tps
                if (st := self._states.get(tp)) is not None and st.position is not None}

    async def commit(self, offsets: dict[tuple[str, int], int] | None = None) -> None:
        """Commits offsets (the next offset to read per partition; default: the positions
        of every assigned partition). Raises CommitFailedError when the group has given a
        partition to another member."""
        if not self._group_id:
            raise ValueError("commit needs a group_id")
        offsets = self._positions(set(self._states)) if offsets is None else offsets
        if not offsets:
            return
        if self._subscription is not None and (self._lost or not self.member_id):
            raise CommitFailedError(
                f"not a member of group {self._group_id!r} now (removed, or not joined yet): "
                "the partitions may belong to another member", "UNKNOWN_MEMBER_ID",
                metadata={"group": self._group_id})
        await self._groups.commit(self._group_id, self.member_id, self._generation, offsets)

    def commit_async(
        self, offsets: dict[tuple[str, int], int] | None = None,
        callback: Callable[[OdradekError | None], None] | None = None,
    ) -> asyncio.Task[None]:
        """Starts a commit and returns at once; callback gets the error or None."""
        task = asyncio.ensure_future(self.commit(
            self._positions(set(self._states)) if offsets is None else offsets))

        def done(t: asyncio.Task[None]) -> None:
            err = None if t.cancelled() else t.exception()
            if callback is not None:
                callback(err if isinstance(err, OdradekError) or err is None else
                         OdradekError(str(err)))
            elif err is not None:
                log.warning("async commit of group %s failed: %s", self._group_id, err)

        task.add_done_callback(done)
        return task

    async def committed(self, tps: Iterable[tuple[str, int]]) -> dict[TopicPartition, int]:
        """The group's committed offsets of tps (those without one are left out)."""
        if not self._group_id:
            raise ValueError("committed needs a group_id")
        got = await self._groups.committed(self._group_id, list(tps))
        return {TopicPartition(*tp): o for tp, o in got.items()}

    async def _commit_quietly(self, tps: set[TopicPartition]) -> None:
        try:
            await self.commit(self._positions(tps))
        except OdradekError as exc:
            log.warning("auto commit of group %s failed: %s", self._group_id, exc)


async def _call(callback: RebalanceCallback | None, tps: list[TopicPartition]) -> None:
    if callback is not None:
        result = callback(tps)
        if inspect.isawaitable(result):
            await result
