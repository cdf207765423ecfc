"""kcat (librdkafka) against a broker's Kafka listener: metadata, keyed produce with
acks=all and idempotence, consume back, and a consumer group whose offsets gRPC sees."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from odradek.client import Admin, murmur2
from tests.kafka.conftest import KafkaBroker

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None,
                                reason="kcat is not installed (Debian: apt-get install kcat)")


def kcat(*args: str, stdin: str | None = None, timeout: float = 60) -> str:
    done = subprocess.run(["kcat", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_kcat_metadata_produce_consume(kafka_broker: KafkaBroker) -> None:
    async with Admin(kafka_broker.address) as admin:
        await admin.create_topic("orders", partitions=3)
    boot = kafka_broker.kafka_address
    listing = kcat("-b", boot, "-L", "-t", "orders")
    assert f"broker 0 at {boot} (controller)" in listing
    assert 'topic "orders" with 3 partitions' in listing
    for p in range(3):
        assert f"partition {p}, leader 0, replicas: 0, isrs: 0" in listing

    keys = [f"customer-{i}" for i in range(20)]
    lines = "".join(f"{k}:order-{i}\n" for i, k in enumerate(keys))
    kcat("-b", boot, "-P", "-t", "orders", "-K:", "-X", "acks=all",
         "-X", "enable.idempotence=true", "-X", "partitioner=murmur2_random", stdin=lines)
    out = kcat("-b", boot, "-C", "-t", "orders", "-o", "beginning", "-e",
               "-f", "%p %k %s\n")
    got = [line.split(" ") for line in out.splitlines()]
    assert sorted((k, v) for _, k, v in got) == sorted(
        (k, f"order-{i}") for i, k in enumerate(keys))
    for partition, key, _ in got:  # Java's partitioner, as Odradek's client
        assert int(partition) == (murmur2(key.encode()) & 0x7FFFFFFF) % 3
    per_partition: dict[str, list[str]] = {}
    for partition, _, value in got:
        per_partition.setdefault(partition, []).append(value)
    for values in per_partition.values():  # in produce order within each partition
        assert values == sorted(values, key=lambda v: int(v.split("-")[1]))
    metrics = kafka_broker.scrape()
    for api in ("ApiVersions", "Metadata", "Produce", "Fetch", "InitProducerId"):
        assert f'odradek_kafka_requests_total{{api="{api}"}}' in metrics
    assert "odradek_kafka_connections_total" in metrics


async def test_kcat_group_commits_offsets_grpc_sees(kafka_broker: KafkaBroker) -> None:
    async with Admin(kafka_broker.address) as admin:
        await admin.create_topic("events", partitions=2)
    boot = kafka_broker.kafka_address
    kcat("-b", boot, "-P", "-t", "events", "-K:", stdin="".join(
        f"k{i}:v{i}\n" for i in range(10)))
    out = kcat("-b", boot, "-G", "billing", "-X", "auto.offset.reset=earliest",
               "-X", "enable.auto.commit=true", "-f", "%s\n", "-e", "events")
    assert sorted(out.split()) == sorted(f"v{i}" for i in range(10))
    async with Admin(kafka_broker.address) as admin:
        ends = {p: (await admin.list_offsets("events", p, "latest")).offset for p in range(2)}
        group = await admin.describe_group("billing")
    assert {(c.topic, c.partition): c.committed_offset for c in group.partitions} == {
        ("events", p): end for p, end in ends.items()}
