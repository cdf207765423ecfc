"""The client library and the CLI against a real broker process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict

from odradek.client import Admin, Consumer, Producer, TopicPartition, murmur2
from tests.brokers import BrokerProcess


async def test_producer_and_consumer_round_trip(broker: BrokerProcess) -> None:
    async with Admin(broker.address) as admin:
        await admin.create_topic("orders", partitions=3)
    sent: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    async with Producer(broker.address, linger_ms=2, compression="lz4") as producer:
        futures = []
        for i in range(3000):
            key = b"customer-%d" % (i % 17)
            futures.append((key, b"order-%d" % i,
                            await producer.send("orders", b"order-%d" % i, key=key)))
        for key, value, future in futures:
            meta = await future
            assert meta.partition == (murmur2(key) & 0x7FFFFFFF) % 3
            sent[meta.partition].append((key, value))

    consumer = Consumer(broker.address, fetch_max_wait_ms=100)
    try:
        tps = [TopicPartition("orders", p) for p in range(3)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
        for _ in range(200):
            for record in await consumer.poll(timeout_ms=200):
                got[record.partition].append((record.key or b"", record.value or b""))
            if sum(len(v) for v in got.values()) >= 3000:
                break
        assert got == sent  # every record, in order per partition
    finally:
        await consumer.close()


def odradek(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "odradek.cli.main", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, check=False,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))


def test_cli_topic_produce_consume(broker: BrokerProcess) -> None:
    boot = ["--bootstrap", broker.address]
    created = odradek("topic", "create", "events", "--partitions", "1",
                      "--config", "retention.ms=3600000", *boot)
    assert created.returncode == 0, created.stderr
    produced = odradek("produce", "events", "--key-separator", ":", *boot,
                       stdin="k1:first\nk2:second\nk3:third\n")
    assert produced.returncode == 0, produced.stderr
    consumed = odradek("consume", "events", "--from-beginning", "--max-messages", "3",
                       "--format", "json", "--timeout-ms", "5000", *boot)
    assert consumed.returncode == 0, consumed.stderr
    rows = [json.loads(line) for line in consumed.stdout.splitlines()]
    assert [(r["key"], r["value"]) for r in rows] == [
        ("k1", "first"), ("k2", "second"), ("k3", "third")]
    offsets = [r["offset"] for r in rows]
    assert offsets == sorted(set(offsets))
    # kcat's -o -N and -e: from a little before the end, exit at the end (no timeout).
    tail = odradek("consume", "events", "--offset", f"-{offsets[-1] - offsets[1] + 1}",
                   "--exit", *boot)
    assert tail.returncode == 0, tail.stderr
    assert tail.stdout.splitlines() == ["second", "third"]
    everything = odradek("consume", "events", "-o", "beginning", "-e", *boot)
    assert everything.stdout.splitlines() == ["first", "second", "third"]
    bad_offset = odradek("consume", "events", "--offset", "soon", *boot)
    assert bad_offset.returncode != 0 and "expected beginning, end" in bad_offset.stderr
    described = odradek("topic", "describe", "events", *boot)
    assert "retention.ms" in described.stdout and "3600000" in described.stdout
    bad = odradek("topic", "create", "bad name", *boot)
    assert bad.returncode != 0 and "INVALID_TOPIC" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = odradek("consume", "nope", "--from-beginning", "--max-messages", "1",
                      "--timeout-ms", "1000", *boot)
    assert missing.returncode != 0 and "UNKNOWN_TOPIC_OR_PARTITION" in missing.stderr
