"""The asynchronous producer: per-partition batching, one request in flight per
partition (so order is kept across retries), retries with backoff and metadata refresh.
Idempotent by default: batches carry a producer id, epoch and sequence numbers, so a
retried batch that the partition already stored is not stored again."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import deque
from collections.abc import Sequence
from itertools import islice
from typing import Any

import grpc

from odradek.client.connection import Cluster
from odradek.client.delivery import Delivery, RecordFuture, RecordMetadata
from odradek.client.errors import (
    ClientClosedError,
    OdradekError,
    ProducerFencedError,
    RecordTooLargeError,
    RequestTimeoutError,
    UnknownTopicOrPartitionError,
    from_rpc_error,
)
from odradek.client.idempotence import ProducerIdentity
from odradek.client.options import ConnectionOptions, client_cluster
from odradek.client.partitioner import DefaultPartitioner
from odradek.records import BATCH_HEADER_SIZE, BatchBuilder, Compression
from odradek.v1 import odradek_pb2 as pb

HeaderInput = tuple[str, bytes | str | None]

_ACKS = {
    "quorum": pb.ACKS_QUORUM, "all": pb.ACKS_QUORUM, "-1": pb.ACKS_QUORUM,
    "leader": pb.ACKS_LEADER, "1": pb.ACKS_LEADER,
}
# Upper bound of a record's framing in a batch: length, attributes, deltas, counts.
_RECORD_OVERHEAD = 22


def parse_acks(acks: str | int) -> int:
    value = _ACKS.get(str(acks).strip().lower())
    if value is None:
        raise ValueError(f"unknown acks {acks!r}: expected quorum (all) or leader (1)")
    return int(value)


def _to_bytes(data: bytes | bytearray | memoryview | str | None) -> bytes | None:
    if data is None or type(data) is bytes:
        return data
    if isinstance(data, str):
        return data.encode()
    return bytes(data)


class _Batch:
    __slots__ = ("builder", "delivery", "created", "data", "count", "size", "done")

    def __init__(
        self, builder: BatchBuilder, delivery: Delivery, created: float,
        done: asyncio.Future[None],
    ) -> None:
        self.builder: BatchBuilder | None = builder
        self.delivery = delivery
        self.created = created
        self.data = b""
        self.count = 0
        self.size = 0  # bytes counted against buffer_memory
        self.done = done


class _Partition:
    __slots__ = ("topic", "partition", "current", "ready", "in_flight", "timer")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.current: _Batch | None = None
        self.ready: deque[_Batch] = deque()
        self.in_flight = False
        self.timer: asyncio.TimerHandle | None = None


class Producer:
    """Sends records to topics. Use as `async with Producer(...) as p:`.

    `await send(...)` appends the record to its partition's open batch and returns a
    future that resolves to the record's RecordMetadata once the broker has it (per
    `acks`), or fails with an OdradekError. A batch goes out when it holds batch_size
    bytes or linger_ms after its first record; batches waiting for the same partition
    share one Produce request up to max_request_size bytes.

    With enable_idempotence (the default unless acks is leader), the producer asks a
    broker for a producer id before its first batch and numbers each partition's batches;
    a partition has one request in flight (up to max_request_size bytes, or
    max_batches_per_request batches), and retries resend it unchanged, so a leader change
    or a lost answer never stores a batch twice. producer_name (Kafka's transactional.id)
    makes the id stable across restarts: a new instance fences the older one, whose sends
    then fail with ProducerFencedError."""

    def __init__(
        self,
        bootstrap: str | Sequence[str] | None = None,
        *,
        linger_ms: float = 5,
        batch_size: int = 16384,
        compression: str | Compression = "none",
        acks: str | int = "quorum",
        retries: int = 2**31 - 1,
        retry_backoff_ms: int = 100,
        retry_backoff_max_ms: int = 1000,
        delivery_timeout_ms: int = 120_000,
        request_timeout_ms: int = 30_000,
        max_request_size: int = 1024 * 1024,
        buffer_memory: int = 32 * 1024 * 1024,
        partitioner: DefaultPartitioner | None = None,
        tls: bool | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        username: str | None = None,
        password: str | None = None,
        cluster: Cluster | None = None,
        connection: ConnectionOptions | None = None,
        enable_idempotence: bool | None = None,
        producer_name: str | None = None,
        max_batches_per_request: int | None = None,
    ) -> None:
        if batch_size <= 0 or max_request_size <= 0:
            raise ValueError("batch_size and max_request_size must be positive")
        if max_batches_per_request is not None and max_batches_per_request <= 0:
            raise ValueError("max_batches_per_request must be positive, got "
                             f"{max_batches_per_request}")
        self._cluster = client_cluster(
            bootstrap, request_timeout_ms, cluster, connection,
            ConnectionOptions(tls, tls_ca, tls_cert, tls_key, username, password))
        self._owns_cluster = cluster is None
        self._linger = max(0.0, linger_ms / 1000)
        self._batch_size = batch_size
        self._compression = (
            compression if isinstance(compression, Compression) else Compression.parse(compression))
        self._acks = parse_acks(acks)
        self._retries = retries
        self._backoff = retry_backoff_ms / 1000
        self._backoff_max = max(retry_backoff_max_ms, retry_backoff_ms) / 1000
        self._delivery_timeout = delivery_timeout_ms / 1000
        self._request_timeout = request_timeout_ms / 1000
        self._max_request_size = max_request_size
        self._buffer_memory = buffer_memory
        self._partitioner = partitioner or DefaultPartitioner()
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._buffered = 0
        self._space: asyncio.Event | None = None
        self._delivered = 0
        self._failed = 0
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        quorum = self._acks == pb.ACKS_QUORUM
        if enable_idempotence is None:
            enable_idempotence = quorum or producer_name is not None
        if enable_idempotence and not quorum:
            raise ValueError("enable_idempotence needs acks=quorum (all): with acks=leader "
                             "an acknowledged batch can be lost, and its retry stored again")
        if producer_name is not None and not enable_idempotence:
            raise ValueError("producer_name needs enable_idempotence")
        self._identity = ProducerIdentity(self._cluster, producer_name, self._delivery_timeout) \
            if enable_idempotence else None
        self._max_batches = max_batches_per_request or 1 << 30

    @property
    def cluster(self) -> Cluster:
        return self._cluster

    def metrics(self) -> dict[str, int]:
        """Counters since the producer started, named as the Kafka producer's:
        records acknowledged, records failed, and bytes waiting to be sent."""
        return {"record-send-total": self._delivered, "record-error-total": self._failed,
                "buffer-used-bytes": self._buffered}

    @property
    def idempotent(self) -> bool:
        return self._identity is not None

    @property
    def producer_id(self) -> tuple[int, int] | None:
        """(producer id, epoch) once known; None before the first send or when not
        idempotent."""
        identity = self._identity
        if identity is None or identity.producer_id < 0:
            return None
        return identity.producer_id, identity.epoch

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- sending -------------------------------------------------------------------------

    async def partitions_for(self, topic: str) -> int:
        return (await self._cluster.topic(topic)).num_partitions

    async def send(
        self,
        topic: str,
        value: bytes | bytearray | memoryview | str | None,
        key: bytes | bytearray | memoryview | str | None = None,
        partition: int | None = None,
        headers: Sequence[HeaderInput] = (),
        timestamp_ms: int | None = None,
    ) -> RecordFuture:
        """Queues one record; returns its delivery future."""
        if self._closed:
            raise ClientClosedError("the producer is closed")
        if self._identity is not None and self._identity.fenced is not None:
            raise self._identity.fenced
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        value_b = value if type(value) is bytes else _to_bytes(value)
        key_b = key if key is None or type(key) is bytes else _to_bytes(key)
        hdrs: Sequence[tuple[str, bytes | None]] = (
            [(name, _to_bytes(v)) for name, v in headers] if headers else ())
        cluster = self._cluster
        info = cluster.topics.get(topic)
        if info is None:
            info = await cluster.topic(topic, refresh=True)
        num_partitions = info.num_partitions
        if partition is None:
            partition = self._partitioner.partition(topic, key_b, num_partitions)
        elif not 0 <= partition < num_partitions:
            raise UnknownTopicOrPartitionError(
                f"topic {topic!r} has no partition {partition} (it has {num_partitions})",
                metadata={"topic": topic, "partition": str(partition)})

        size = _RECORD_OVERHEAD + (len(key_b) if key_b else 0) + (len(value_b) if value_b else 0)
        for name, hv in hdrs:
            size += 10 + len(name) + (len(hv) if hv else 0)
        if size + BATCH_HEADER_SIZE > self._max_request_size:
            raise RecordTooLargeError(
                f"the record is {size + BATCH_HEADER_SIZE} bytes as a batch, over "
                f"max_request_size {self._max_request_size}")
        if self._buffered >= self._buffer_memory:
            await self._wait_for_space()
            if self._closed:
                raise ClientClosedError("the producer is closed")

        state = self._partitions.get((topic, partition))
        if state is None:
            state = self._partitions[(topic, partition)] = _Partition(topic, partition)
        batch = state.current
        closed = False
        if batch is not None and batch.builder is not None and (
            batch.builder.size_estimate + size > self._batch_size
        ):
            self._close_batch(state, num_partitions)
            batch = None
            closed = True
        if batch is None:
            if cluster.metadata_stale():
                self._refresh_in_background(topic)
            batch = _Batch(BatchBuilder(self._compression), Delivery(loop, topic, partition),
                           time.monotonic(), loop.create_future())
            state.current = batch
            state.timer = loop.call_later(self._linger, self._linger_expired, state, batch)
        if timestamp_ms is None:
            timestamp_ms = time.time_ns() // 1_000_000
        builder = batch.builder
        assert builder is not None
        builder.append(timestamp_ms, key_b, value_b, hdrs)
        fut = batch.delivery.add(timestamp_ms)
        batch.size += size
        self._buffered += size
        if builder.size_estimate >= self._batch_size:
            self._close_batch(state, num_partitions)
            closed = True
        if closed:
            # Let the sender start on the closed batch while the caller keeps producing.
            await asyncio.sleep(0)
        return fut

    def _refresh_in_background(self, topic: str) -> None:
        async def refresh() -> None:
            try:
                await self._cluster.refresh([topic])
            except OdradekError:
                pass  # sends keep using what is known; errors show on the next request

        task = asyncio.ensure_future(refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | bytearray | memoryview | str | None,
        key: bytes | bytearray | memoryview | str | None = None,
        partition: int | None = None,
        headers: Sequence[HeaderInput] = (),
        timestamp_ms: int | None = None,
    ) -> RecordMetadata:
        fut = await self.send(topic, value, key, partition, headers, timestamp_ms)
        return await fut

    async def _wait_for_space(self) -> None:
        if self._space is None:
            self._space = asyncio.Event()
        while self._buffered >= self._buffer_memory and not self._closed:
            self._space.clear()
            await self._space.wait()

    def _linger_expired(self, state: _Partition, batch: _Batch) -> None:
        if state.current is batch:
            state.timer = None
            self._close_batch(state, None)

    def _close_batch(self, state: _Partition, num_partitions: int | None) -> None:
        batch = state.current
        if batch is None:
            return
        state.current = None
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        builder = batch.builder
        assert builder is not None
        batch.count = len(builder)
        batch.data = builder.build()
        batch.builder = None
        state.ready.append(batch)
        if num_partitions is None:
            info = self._cluster.topics.get(state.topic)
            num_partitions = info.num_partitions if info else 0
        self._partitioner.batch_closed(state.topic, state.partition, num_partitions)
        if not state.in_flight:
            self._start_drain(state)

    def _start_drain(self, state: _Partition) -> None:
        state.in_flight = True
        task = asyncio.ensure_future(self._drain(state))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, state: _Partition) -> None:
        try:
            while state.ready:
                batches = [state.ready[0]]
                total = len(batches[0].data)
                for b in islice(state.ready, 1, self._max_batches):
                    if total + len(b.data) > self._max_request_size:
                        break
                    batches.append(b)
                    total += len(b.data)
                try:
                    await self._send_batches(state, batches)
                except asyncio.CancelledError:
                    self._fail(batches, ClientClosedError("the producer was closed"))
                    raise
                except Exception as exc:  # noqa: BLE001 - never leave futures pending
                    self._fail(batches, OdradekError(f"unexpected error: {exc!r}", "UNKNOWN"))
                for _ in batches:
                    state.ready.popleft()
        finally:
            state.in_flight = False

    def _backoff_for(self, attempt: int) -> float:
        delay: float = min(self._backoff * (2 ** (attempt - 1)), self._backoff_max)
        return delay * random.uniform(0.8, 1.2)

    async def _send_batches(self, state: _Partition, batches: list[_Batch]) -> None:
        topic, partition = state.topic, state.partition
        cluster = self._cluster
        records = batches[0].data if len(batches) == 1 else b"".join(b.data for b in batches)
        identity = self._identity
        generation = 0
        if identity is not None:
            try:
                generation = await identity.ensure()
            except OdradekError as exc:
                self._fail(batches, exc)
                return
            # Stamped once: every retry below resends these very bytes.
            records = identity.stamp(topic, partition, records)
        request = pb.ProduceRequest(
            topic=topic, partition=partition, records=records, acks=self._acks,  # type: ignore[arg-type]
            timeout_ms=int(self._request_timeout * 1000))
        attempt = 0
        while True:
            err: OdradekError
            try:
                address = cluster.leader_address(topic, partition)
                if address is None:
                    address = await cluster.leader(topic, partition)
                resp = await cluster.broker_stub(address).Produce(
                    request, timeout=self._request_timeout + 5)
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
            except OdradekError as exc:
                err = exc
            else:
                self._complete(batches, resp)
                return
            attempt += 1
            delay = self._backoff_for(attempt)
            waited = time.monotonic() - batches[0].created
            give_up = not err.retriable or attempt > self._retries or (
                waited + delay > self._delivery_timeout)
            if give_up and identity is not None:
                # The batches may or may not be stored: this partition's sequence cannot go
                # on, so later batches get a new identity.
                if isinstance(err, ProducerFencedError):
                    identity.fence(err)
                else:
                    identity.reset(generation)
            if not err.retriable or attempt > self._retries:
                self._fail(batches, err)
                return
            if waited + delay > self._delivery_timeout:
                self._fail(batches, RequestTimeoutError(
                    f"delivery to {topic}-{partition} timed out after {waited * 1000:.0f} ms "
                    f"and {attempt} attempts; last error: {err}",
                    metadata={"last_reason": err.reason}))
                return
            await asyncio.sleep(delay)
            await cluster.after_error(topic, partition, err)

    def _complete(self, batches: list[_Batch], resp: pb.ProduceResponse) -> None:
        offset = resp.base_offset
        append_time = resp.log_append_time_ms
        # Batches the partition had already (retries) keep their first offsets, so the
        # batches of one answer need not be contiguous.
        bases = resp.batch_base_offsets if len(resp.batch_base_offsets) == len(batches) else None
        for n, b in enumerate(batches):
            if bases is not None:
                offset = bases[n]
            b.delivery.succeed(offset, append_time)
            self._delivered += b.count
            offset += b.count
            self._release(b)

    def _fail(self, batches: list[_Batch], err: OdradekError) -> None:
        for b in batches:
            if b.done.done():
                continue
            b.delivery.fail(err)
            self._failed += len(b.delivery)
            self._release(b)

    def _release(self, batch: _Batch) -> None:
        self._buffered -= batch.size
        batch.data = b""
        if not batch.done.done():
            batch.done.set_result(None)
        if self._space is not None and self._buffered < self._buffer_memory:
            self._space.set()

    # -- lifecycle -----------------------------------------------------------------------

    async def flush(self, timeout: float | None = None) -> None:
        """Sends every open batch now and waits until all records sent so far are
        acknowledged or failed."""
        waiters: list[asyncio.Future[Any]] = []
        for state in list(self._partitions.values()):
            if state.current is not None:
                self._close_batch(state, None)
            waiters.extend(b.done for b in state.ready)
        if waiters:
            await asyncio.wait(waiters, timeout=timeout)

    async def close(self, timeout: float | None = None) -> None:
        """Flushes, then releases connections. Records not delivered within timeout
        fail with ClientClosedError."""
        if self._closed:
            return
        try:
            await self.flush(timeout)
        finally:
            self._closed = True
            if self._space is not None:
                self._space.set()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            for state in self._partitions.values():
                if state.timer is not None:
                    state.timer.cancel()
                pending = list(state.ready) + ([state.current] if state.current else [])
                self._fail(pending, ClientClosedError("the producer was closed"))
            if self._owns_cluster:
                await self._cluster.close()
