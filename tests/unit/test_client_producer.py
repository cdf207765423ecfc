"""Producer against the in-process fake broker: batching, placement, retries, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from odradek.client import (
    CorruptRecordError,
    Producer,
    RecordMetadata,
    RecordTooLargeError,
    RequestTimeoutError,
    UnknownTopicOrPartitionError,
)
from odradek.client.partitioner import DefaultPartitioner, murmur2, partition_for_key
from odradek.records import iter_batches
from tests.unit.fake_odradek import FakeCluster


@asynccontextmanager
async def fake_cluster(brokers: int = 1) -> AsyncIterator[FakeCluster]:
    fake = await FakeCluster(brokers).start()
    try:
        yield fake
    finally:
        await fake.stop()


def kafka_murmur2(data: bytes) -> int:
    """kafka-python's murmur2, which implements Kafka's (imported quietly: it warns)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka.partitioner.default import murmur2

    return int(murmur2(data))


def batches_in(request: object) -> list[int]:
    """Record counts of the batches in a ProduceRequest."""
    return [h.record_count for _, h in iter_batches(request.records)]  # type: ignore[attr-defined]


# -- partitioner ---------------------------------------------------------------------------


def test_murmur2_matches_kafka() -> None:
    # Kafka's own test vector (UtilsTest): murmur2("21") == -973932308.
    assert murmur2(b"21") == -973932308
    for data in [b"", b"a", b"ab", b"abc", b"abcd", b"foobar", b"\xff\x80\x00\x7f",
                 bytes(range(256)), b"key-12345"]:
        assert murmur2(data) & 0xFFFFFFFF == kafka_murmur2(data) & 0xFFFFFFFF
        assert partition_for_key(data, 7) == (kafka_murmur2(data) & 0x7FFFFFFF) % 7


def test_sticky_partition_rotates_when_batch_closes() -> None:
    p = DefaultPartitioner()
    first = p.partition("t", None, 4)
    assert all(p.partition("t", None, 4) == first for _ in range(10))
    p.batch_closed("t", (first + 1) % 4, 4)  # another partition's batch: no change
    assert p.partition("t", None, 4) == first
    p.batch_closed("t", first, 4)
    assert p.partition("t", None, 4) != first
    assert DefaultPartitioner().partition("t", None, 1) == 0


# -- delivery ------------------------------------------------------------------------------


async def test_delivery_futures_resolve_with_offsets() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        async with Producer(fake.bootstrap, linger_ms=1) as p:
            futs = [await p.send("t", f"v{i}", key=b"k", timestamp_ms=1000 + i)
                    for i in range(5)]
            metas = await asyncio.gather(*futs)
            assert metas == [RecordMetadata("t", 0, i, 1000 + i) for i in range(5)]
            assert (await p.send_and_wait("t", b"more", partition=0)).offset == 5
        recs = fake.records("t", 0)
        assert [r.value for r in recs] == [b"v0", b"v1", b"v2", b"v3", b"v4", b"more"]
        assert recs[0].key == b"k" and recs[0].timestamp == 1000


async def test_headers_compression_and_log_append_time() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        fake.log_append_time = True
        async with Producer(fake.bootstrap, compression="zstd") as p:
            meta = await p.send_and_wait("t", b"v" * 1000, headers=[("a", "1"), ("b", None)])
        assert meta.timestamp == 1_700_000_000_000
        (rec,) = fake.records("t", 0)
        assert rec.headers == (("a", b"1"), ("b", None)) and rec.value == b"v" * 1000
        req = fake.produce_requests()[0]
        assert req.acks == 2  # quorum by default


async def test_linger_batches_records_into_one_request() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        async with Producer(fake.bootstrap, linger_ms=100) as p:
            start = time.monotonic()
            futs = [await p.send("t", b"x" * 10, partition=0) for _ in range(20)]
            await asyncio.sleep(0.03)
            assert not any(f.done() for f in futs)  # still lingering
            await asyncio.gather(*futs)
            assert time.monotonic() - start >= 0.09
        reqs = fake.produce_requests()
        assert len(reqs) == 1 and batches_in(reqs[0]) == [20]


async def test_batch_size_closes_batches_without_waiting_for_linger() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        async with Producer(fake.bootstrap, linger_ms=10_000, batch_size=1000) as p:
            futs = [await p.send("t", b"x" * 100, partition=0) for _ in range(25)]
            # The full batches go out at once; only the last, partial one lingers.
            await asyncio.wait_for(asyncio.gather(*futs[:16]), 2)
            assert not futs[-1].done()
            await p.flush()
            assert futs[-1].done()
        counts = [c for r in fake.produce_requests() for c in batches_in(r)]
        assert sum(counts) == 25 and len(counts) >= 3
        for r in fake.produce_requests():
            for _, h in iter_batches(r.records):
                assert h.size <= 1000


async def test_waiting_batches_share_one_request_and_keep_order() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        # The first request is slowed by a retriable error, so batches pile up behind it.
        fake.inject("Produce", None, grpc.StatusCode.UNAVAILABLE)
        async with Producer(fake.bootstrap, linger_ms=0, batch_size=200,
                            retry_backoff_ms=100) as p:
            futs = [await p.send("t", b"%03d" % i + b"x" * 90, partition=0)
                    for i in range(30)]
            offsets = [m.offset for m in await asyncio.gather(*futs)]
        assert offsets == list(range(30))
        assert [r.value[:3] for r in fake.records("t", 0)] == [b"%03d" % i for i in range(30)]
        assert max(len(batches_in(r)) for r in fake.produce_requests()) > 1


async def test_keyed_records_land_on_murmur2_partitions() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 6)
        async with Producer(fake.bootstrap) as p:
            keys = [f"key-{i}".encode() for i in range(40)]
            metas = await asyncio.gather(*[await p.send("t", b"v", key=k) for k in keys])
        for k, m in zip(keys, metas, strict=True):
            assert m.partition == (kafka_murmur2(k) & 0x7FFFFFFF) % 6
            assert any(r.key == k for r in fake.records("t", m.partition))


async def test_keyless_records_stick_to_one_partition_per_batch() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 4)
        async with Producer(fake.bootstrap, linger_ms=50) as p:
            metas = await asyncio.gather(*[await p.send("t", b"v") for _ in range(10)])
        assert len({m.partition for m in metas}) == 1


# -- retries and errors ----------------------------------------------------------------------


async def test_retries_after_transient_unavailable() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        fake.inject("Produce", None, grpc.StatusCode.UNAVAILABLE, count=2)
        async with Producer(fake.bootstrap, retry_backoff_ms=10) as p:
            meta = await p.send_and_wait("t", b"v")
        assert meta.offset == 0
        assert len(fake.produce_requests()) == 3
        assert len(fake.records("t", 0)) == 1


async def test_not_leader_refreshes_metadata_and_moves_to_new_leader() -> None:
    async with fake_cluster(brokers=2) as fake:
        fake.create_topic("t", 1, leader=0)
        async with Producer(fake.bootstrap, retry_backoff_ms=10) as p:
            assert (await p.send_and_wait("t", b"a")).offset == 0
            fake.leaders[("t", 0)] = 1  # leadership moves; the producer's metadata is stale
            assert (await p.send_and_wait("t", b"b")).offset == 1
        assert len(fake.produce_requests(broker=0)) == 2  # a, then b refused
        assert len(fake.produce_requests(broker=1)) == 1
        assert [r.value for r in fake.records("t", 0)] == [b"a", b"b"]
        assert sum(1 for b, m, _ in fake.requests if m == "Metadata") >= 2


async def test_not_leader_with_leader_hint_goes_straight_there() -> None:
    async with fake_cluster(brokers=2) as fake:
        fake.create_topic("t", 1, leader=0)
        fake.leader_hints = True
        async with Producer(fake.bootstrap, retry_backoff_ms=10) as p:
            await p.send_and_wait("t", b"a")
            metadata_calls = sum(1 for _, m, _ in fake.requests if m == "Metadata")
            fake.leaders[("t", 0)] = 1
            await p.send_and_wait("t", b"b")
            assert sum(1 for _, m, _ in fake.requests if m == "Metadata") == metadata_calls
        assert len(fake.produce_requests(broker=1)) == 1


async def test_non_retriable_error_fails_the_future() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        fake.inject("Produce", "CORRUPT_RECORD", grpc.StatusCode.INVALID_ARGUMENT)
        async with Producer(fake.bootstrap) as p:
            fut = await p.send("t", b"v")
            with pytest.raises(CorruptRecordError) as info:
                await fut
            assert info.value.reason == "CORRUPT_RECORD" and not info.value.retriable
            assert len(fake.produce_requests()) == 1
            # The partition keeps working after the failure.
            assert (await p.send_and_wait("t", b"w")).offset == 0
            assert p.metrics() == {"record-send-total": 1, "record-error-total": 1,
                                   "buffer-used-bytes": 0}


async def test_delivery_timeout() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        fake.inject("Produce", "NOT_ENOUGH_REPLICAS", grpc.StatusCode.UNAVAILABLE, count=1000)
        async with Producer(fake.bootstrap, retry_backoff_ms=20, delivery_timeout_ms=300) as p:
            with pytest.raises(RequestTimeoutError) as info:
                await p.send_and_wait("t", b"v")
        assert "NOT_ENOUGH_REPLICAS" in str(info.value)


async def test_send_checks_topic_partition_and_size() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 2)
        async with Producer(fake.bootstrap, max_request_size=1000) as p:
            with pytest.raises(UnknownTopicOrPartitionError):
                await p.send("missing", b"v")
            with pytest.raises(UnknownTopicOrPartitionError):
                await p.send("t", b"v", partition=2)
            with pytest.raises(RecordTooLargeError):
                await p.send("t", b"v" * 2000)


async def test_buffer_memory_applies_backpressure() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        async with Producer(fake.bootstrap, buffer_memory=2000, batch_size=500,
                            linger_ms=1) as p:
            futs = [await p.send("t", b"x" * 100) for _ in range(100)]
            assert p._buffered <= 2000 + 200
            await asyncio.gather(*futs)
        assert len(fake.records("t", 0)) == 100
