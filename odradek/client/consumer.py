"""The asynchronous consumer: manual assignment, one prefetch in flight per partition."""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import NamedTuple

from odradek.client.auth import ScramLogin
from odradek.client.connection import Cluster
from odradek.client.decoder import ConsumerRecord as ConsumerRecord
from odradek.client.decoder import decode_fetched
from odradek.client.errors import (
    CorruptRecordError,
    OdradekError,
    OffsetOutOfRangeError,
)
from odradek.records import InvalidRecordError as _BatchError
from odradek.security.tls import ClientTLS
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc


class TopicPartition(NamedTuple):
    topic: str
    partition: int


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
                 "error", "high_watermark")

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
    with "none", poll raises OffsetOutOfRangeError instead."""

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
    ) -> None:
        if auto_offset_reset not in _RESETS:
            raise ValueError(
                f"auto_offset_reset must be earliest, latest or none, not {auto_offset_reset!r}")
        self._cluster = cluster or Cluster(bootstrap, request_timeout_ms=request_timeout_ms,
                                         tls=ClientTLS.from_options(tls, tls_ca, tls_cert, tls_key),
                                         login=ScramLogin.from_options(username, password))
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
        attempt = 0
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
                attempt = 0
                records, next_offset = decode_records(tp, resp.records, offset, self._check_crcs)
                if next_offset is None:
                    next_offset = max(offset, resp.next_offset)
                next_offset = max(next_offset, offset)
                st.high_watermark = resp.high_watermark
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
        await self._resolve_resets()
        while True:
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
        if self._closed:
            return
        self._closed = True
        tasks = [st.task for st in self._states.values() if st.task is not None]
        for st in self._states.values():
            self._stop(st)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._owns_cluster:
            await self._cluster.close()

