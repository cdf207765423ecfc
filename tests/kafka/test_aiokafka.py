"""aiokafka against the Kafka listener: an idempotent producer, a two-member consumer
group that splits the partitions, reads every record and commits where gRPC sees it, and
its admin client creating a topic."""

from __future__ import annotations

import asyncio

import pytest

from odradek.client import Admin
from tests.kafka.conftest import KafkaBroker

aiokafka = pytest.importorskip("aiokafka")
aiokafka_admin = pytest.importorskip("aiokafka.admin")


async def test_aiokafka_producer_group_and_admin(kafka_broker: KafkaBroker) -> None:
    boot = kafka_broker.kafka_address
    admin = aiokafka_admin.AIOKafkaAdminClient(bootstrap_servers=boot)
    await admin.start()
    try:
        await admin.create_topics([aiokafka_admin.NewTopic("audit", 4, 1)])
    finally:
        await admin.close()
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=boot, enable_idempotence=True,
                                         acks="all")
    await producer.start()
    try:
        sends = [await producer.send("audit", b"e%d" % i, key=b"k%d" % i) for i in range(300)]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()

    members = [aiokafka.AIOKafkaConsumer("audit", bootstrap_servers=boot, group_id="auditors",
                                         auto_offset_reset="earliest",
                                         enable_auto_commit=False)
               for _ in range(2)]
    got: list[bytes] = []
    for member in members:
        await member.start()
    try:
        async def settled() -> None:
            while True:
                for member in members:
                    batches = await member.getmany(timeout_ms=200)
                    got.extend(r.value for records in batches.values() for r in records)
                    if batches:
                        await member.commit()
                if len(got) >= 300 and all(len(m.assignment()) == 2 for m in members):
                    return
        await asyncio.wait_for(settled(), 60)
        for member in members:
            await member.commit()
    finally:
        for member in members:
            await member.stop()
    assert sorted(got) == sorted(b"e%d" % i for i in range(300))
    async with Admin(kafka_broker.address) as grpc_admin:
        described = await grpc_admin.describe_group("auditors")
    assert len(described.partitions) == 4
    assert all(p.committed_offset == p.log_end_offset for p in described.partitions)
