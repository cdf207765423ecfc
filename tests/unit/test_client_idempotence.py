"""The idempotent producer against the in-process fake broker: batches carry the producer
id, epoch and consecutive sequences; retries resend the same bytes; refused sequences and
fencing surface as clear errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from odradek.client import Producer
from odradek.client.errors import OutOfOrderSequenceError, ProducerFencedError
from odradek.records import BatchHeader, iter_batches
from tests.unit.fake_odradek import FakeCluster


@asynccontextmanager
async def fake_cluster() -> AsyncIterator[FakeCluster]:
    fake = await FakeCluster(1).start()
    fake.create_topic("t", partitions=2)
    try:
        yield fake
    finally:
        await fake.stop()


def sent(fake: FakeCluster) -> list[tuple[int, BatchHeader]]:
    """(partition, header) of every batch of every Produce request, in order."""
    return [(req.partition, h) for req in fake.produce_requests()
            for _, h in iter_batches(req.records)]


async def test_batches_carry_id_epoch_and_consecutive_sequences() -> None:
    async with fake_cluster() as fake, Producer(fake.bootstrap, linger_ms=0,
                                                batch_size=200) as producer:
        assert producer.idempotent and producer.producer_id is None
        for i in range(12):
            await (await producer.send("t", b"x" * 40, partition=i % 2))
        assert producer.producer_id == (1000, 0)
    headers = sent(fake)
    for partition in (0, 1):
        mine = [h for p, h in headers if p == partition]
        assert {(h.producer_id, h.producer_epoch) for h in mine} == {(1000, 0)}
        seq = 0
        for h in mine:
            assert h.base_sequence == seq
            seq += h.record_count
        assert seq == 6
    assert [m for _, m, _ in fake.requests if m == "InitProducerId"] == ["InitProducerId"]


async def test_retries_resend_the_same_bytes() -> None:
    async with fake_cluster() as fake, Producer(fake.bootstrap, linger_ms=0,
                                                retry_backoff_ms=1) as producer:
        fake.inject("Produce", "NOT_ENOUGH_REPLICAS", grpc.StatusCode.UNAVAILABLE, count=2)
        meta = await (await producer.send("t", b"v", partition=0))
        assert meta.offset == 0
    requests = fake.produce_requests()
    assert len(requests) == 3
    assert requests[0].records == requests[1].records == requests[2].records


async def test_at_most_max_batches_per_request() -> None:
    async with fake_cluster() as fake, Producer(fake.bootstrap, linger_ms=50, batch_size=100,
                                                max_batches_per_request=2) as producer:
        futures = [await producer.send("t", b"y" * 60, partition=0) for _ in range(7)]
        for fut in futures:
            await fut
    assert all(len(list(iter_batches(r.records))) <= 2 for r in fake.produce_requests())


async def test_out_of_order_fails_the_batch_and_starts_a_new_producer_id() -> None:
    async with fake_cluster() as fake, Producer(fake.bootstrap, linger_ms=0) as producer:
        await (await producer.send("t", b"a", partition=0))
        fake.inject("Produce", "OUT_OF_ORDER_SEQUENCE", grpc.StatusCode.FAILED_PRECONDITION)
        with pytest.raises(OutOfOrderSequenceError):
            await (await producer.send("t", b"b", partition=0))
        await (await producer.send("t", b"c", partition=0))
        assert producer.producer_id == (1001, 0)
    last = sent(fake)[-1][1]
    assert (last.producer_id, last.base_sequence) == (1001, 0)


async def test_fenced_producer_refuses_further_sends() -> None:
    async with fake_cluster() as fake, Producer(fake.bootstrap, linger_ms=0,
                                                producer_name="writer") as producer:
        fake.inject("Produce", "PRODUCER_FENCED", grpc.StatusCode.FAILED_PRECONDITION)
        with pytest.raises(ProducerFencedError):
            await (await producer.send("t", b"a", partition=0))
        with pytest.raises(ProducerFencedError):
            await producer.send("t", b"b", partition=0)
    init = [r for _, m, r in fake.requests if m == "InitProducerId"]
    assert [r.producer_name for r in init] == ["writer"]


async def test_acks_leader_is_not_idempotent_unless_asked() -> None:
    async with fake_cluster() as fake:
        async with Producer(fake.bootstrap, linger_ms=0, acks="leader") as producer:
            assert not producer.idempotent
            await (await producer.send("t", b"a", partition=0))
        assert sent(fake)[-1][1].producer_id == -1
        async with Producer(fake.bootstrap, linger_ms=0, enable_idempotence=False) as producer:
            await (await producer.send("t", b"a", partition=0))
        assert sent(fake)[-1][1].producer_id == -1
        with pytest.raises(ValueError, match="acks=quorum"):
            Producer(fake.bootstrap, acks="leader", enable_idempotence=True)
        with pytest.raises(ValueError, match="needs enable_idempotence"):
            Producer(fake.bootstrap, producer_name="x", enable_idempotence=False)
