"""Consumer against the in-process fake broker: order, seeks, skips, gaps, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from odradek.client import (
    Consumer,
    ConsumerRecord,
    OffsetOutOfRangeError,
    TopicPartition,
    UnknownTopicOrPartitionError,
)
from odradek.records import BatchBuilder, encode_batch
from tests.unit.fake_odradek import FakeCluster

TP = TopicPartition("t", 0)


@asynccontextmanager
async def fake_cluster(brokers: int = 1) -> AsyncIterator[FakeCluster]:
    fake = await FakeCluster(brokers).start()
    try:
        yield fake
    finally:
        await fake.stop()


def batch(values: list[bytes], ts: int = 1000) -> bytes:
    return encode_batch([(ts + i, b"k%d" % i, v) for i, v in enumerate(values)])


async def poll_n(c: Consumer, n: int, timeout_ms: int = 2000) -> list[ConsumerRecord]:
    out: list[ConsumerRecord] = []
    for _ in range(50):
        out += await c.poll(timeout_ms / 50)
        if len(out) >= n:
            break
    return out


async def test_poll_returns_records_in_order_and_tracks_position() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        fake.append_raw("t", 0, batch([b"a", b"b", b"c"]))
        fake.append_raw("t", 0, batch([b"d", b"e"]))
        async with Consumer(fake.bootstrap, auto_offset_reset="earliest") as c:
            c.assign([TP])
            recs = await poll_n(c, 5)
            assert [r.value for r in recs] == [b"a", b"b", b"c", b"d", b"e"]
            assert [r.offset for r in recs] == [0, 1, 2, 3, 4]
            assert recs[0] == ConsumerRecord("t", 0, 0, 1000, b"k0", b"a", ())
            assert await c.position(TP) == 5
            assert await c.poll(50) == []
            fake.append_raw("t", 0, batch([b"f"]))
            await fake.notify()
            assert [r.value for r in await poll_n(c, 1)] == [b"f"]


async def test_latest_reset_and_seeks() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        fake.append_raw("t", 0, batch([b"a", b"b", b"c"], ts=1000))
        fake.append_raw("t", 0, batch([b"d", b"e"], ts=5000))
        async with Consumer(fake.bootstrap) as c:  # latest by default
            c.assign([TP])
            assert await c.position(TP) == 5
            assert await c.poll(50) == []
            await c.seek_to_beginning()
            assert await c.position(TP) == 0
            assert len(await poll_n(c, 5)) == 5
            c.seek(TP, 3)
            assert [r.offset for r in await poll_n(c, 2)] == [3, 4]
            assert await c.seek_to_timestamp(TP, 4000) == 3
            assert [r.value for r in await poll_n(c, 2)] == [b"d", b"e"]
            assert await c.seek_to_timestamp(TP, 9999) == 5
            await c.seek_to_end(TP)
            assert await c.position(TP) == 5
            assert await c.end_offsets([TP]) == {TP: 5}
            assert await c.beginning_offsets([TP]) == {TP: 0}


async def test_skips_records_below_position_in_a_returned_batch() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        fake.append_raw("t", 0, batch([b"%d" % i for i in range(10)]))
        async with Consumer(fake.bootstrap) as c:
            c.assign([TP])
            c.seek(TP, 6)
            recs = await poll_n(c, 4)
            assert [r.offset for r in recs] == [6, 7, 8, 9]
            assert fake.requests[-1][2].offset in (6, 10)


async def test_control_batches_and_offset_gaps() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        fake.append_raw("t", 0, batch([b"a", b"b"]))  # 0, 1
        fake.append_control("t", 0)  # 2
        fake.append_raw("t", 0, batch([b"c"]), skip=5)  # gap: 3..7 absent, c at 8
        fake.append_control("t", 0)  # 9
        async with Consumer(fake.bootstrap, auto_offset_reset="earliest") as c:
            c.assign([TP])
            recs = await poll_n(c, 3)
            assert [(r.offset, r.value) for r in recs] == [(0, b"a"), (1, b"b"), (8, b"c")]
            assert await c.poll(50) == []
            assert await c.position(TP) == 10  # past the trailing control batch


async def test_max_records_splits_a_fetch() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        fake.append_raw("t", 0, batch([b"%d" % i for i in range(10)]))
        async with Consumer(fake.bootstrap, auto_offset_reset="earliest") as c:
            c.assign([TP])
            first = await c.poll(1000, max_records=4)
            assert [r.offset for r in first] == [0, 1, 2, 3]
            assert await c.position(TP) == 4
            rest = await poll_n(c, 6)
            assert [r.offset for r in rest] == list(range(4, 10))


async def test_multiple_partitions() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 3)
        for p in range(3):
            fake.append_raw("t", p, batch([b"p%d-%d" % (p, i) for i in range(4)]))
        async with Consumer(fake.bootstrap, auto_offset_reset="earliest") as c:
            c.assign(await c.partitions_for("t"))
            recs = await poll_n(c, 12)
            assert len(recs) == 12
            for p in range(3):
                assert [r.offset for r in recs if r.partition == p] == [0, 1, 2, 3]


async def test_out_of_range_resets_or_raises() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        fake.append_raw("t", 0, batch([b"a", b"b"]))
        async with Consumer(fake.bootstrap, auto_offset_reset="earliest") as c:
            c.assign([TP])
            c.seek(TP, 50)
            assert [r.value for r in await poll_n(c, 2)] == [b"a", b"b"]
        async with Consumer(fake.bootstrap, auto_offset_reset="none") as c:
            c.assign([TP])
            c.seek(TP, 50)
            with pytest.raises(OffsetOutOfRangeError):
                await poll_n(c, 1)


async def test_out_of_range_for_an_offset_seen_committed_is_retried_not_reset() -> None:
    """A stale leader may call an offset out of range that another leader already showed
    committed: the consumer asks for the leader again and keeps its position."""
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        fake.append_raw("t", 0, batch([b"a", b"b", b"c"]))
        async with Consumer(fake.bootstrap, auto_offset_reset="earliest") as c:
            c.assign([TP])
            assert [r.value for r in await poll_n(c, 3)] == [b"a", b"b", b"c"]
            fake.inject("Fetch", "OFFSET_OUT_OF_RANGE", grpc.StatusCode.OUT_OF_RANGE,
                        count=3, log_start_offset="0", high_watermark="1")
            fake.append_raw("t", 0, batch([b"d"]))
            await fake.notify()
            assert [r.value for r in await poll_n(c, 1, timeout_ms=5000)] == [b"d"]


async def test_unknown_topic_raises_from_poll() -> None:
    async with fake_cluster() as fake, Consumer(fake.bootstrap) as c:
        c.assign([("nope", 0)])
        c.seek(("nope", 0), 0)
        with pytest.raises(UnknownTopicOrPartitionError):
            await c.poll(1000)


async def test_fetch_retries_and_follows_the_leader() -> None:
    async with fake_cluster(brokers=2) as fake:
        fake.create_topic("t", 1, leader=0)
        fake.append_raw("t", 0, batch([b"a"]))
        fake.inject("Fetch", None, grpc.StatusCode.UNAVAILABLE)
        async with Consumer(fake.bootstrap, auto_offset_reset="earliest",
                            retry_backoff_ms=10) as c:
            c.assign([TP])
            assert [r.value for r in await poll_n(c, 1)] == [b"a"]
            fake.leaders[("t", 0)] = 1
            fake.append_raw("t", 0, batch([b"b"]))
            await fake.notify()
            assert [r.value for r in await poll_n(c, 1)] == [b"b"]
        assert any(b == 1 and m == "Fetch" for b, m, _ in fake.requests)


async def test_headers_and_null_key_value() -> None:
    async with fake_cluster() as fake:
        fake.create_topic("t", 1)
        b = BatchBuilder()
        b.append(7, None, None, [("h", b"x")])
        fake.append_raw("t", 0, b.build())
        async with Consumer(fake.bootstrap, auto_offset_reset="earliest") as c:
            c.assign([TP])
            (r,) = await poll_n(c, 1)
            assert (r.key, r.value, r.headers, r.timestamp) == (None, None, (("h", b"x"),), 7)


def test_decoder_matches_reference_reader() -> None:
    import os
    import random

    from odradek.client.decoder import decode_fetched
    from odradek.records import Compression, iter_records
    from odradek.records.batch import set_offset_and_epoch

    rng = random.Random(7)
    buf = bytearray()
    offset = 0
    for i in range(12):
        b = BatchBuilder(list(Compression)[i % 5], control=(i % 4 == 3))
        for _ in range(rng.randrange(1, 40)):
            key = rng.choice([None, b"", os.urandom(rng.randrange(1, 300))])
            value = rng.choice([None, b"", os.urandom(rng.randrange(1, 20000))])
            headers = rng.choice([[], [("a", b"1")], [("é" * 70, None), ("b", os.urandom(200))]])
            b.append(1000 + rng.randrange(-5, 100000), key, value, headers)
        pos = len(buf)
        buf += b.build()
        set_offset_and_epoch(buf, pos, offset, 1)
        offset += len(b) + rng.randrange(0, 3)
    data = bytes(buf) + bytes(buf[:30])  # a partial batch at the end is ignored
    expected = [ConsumerRecord("t", 0, r.offset, r.timestamp, r.key, r.value, r.headers)
                for r in iter_records(bytes(buf))]
    got, next_offset = decode_fetched("t", 0, data, 0)
    assert got == expected and next_offset is not None and next_offset <= offset
    start = expected[len(expected) // 2].offset
    assert decode_fetched("t", 0, data, start)[0] == [r for r in expected if r.offset >= start]
    corrupt = bytearray(buf)
    corrupt[100] ^= 0xFF
    with pytest.raises(Exception) as info:
        decode_fetched("t", 0, bytes(corrupt), 0)
    assert getattr(info.value, "reason", None) == "CORRUPT_RECORD"
