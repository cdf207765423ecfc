"""One group model across protocols: a group with Kafka classic members refuses a gRPC
member (INCONSISTENT_GROUP_PROTOCOL), a gRPC offset reset and a delete (NON_EMPTY_GROUP);
a group with gRPC members refuses a Kafka member; once the Kafka consumers have left,
gRPC resets the offsets they committed and a Kafka consumer starts from the reset."""

from __future__ import annotations

import asyncio
import threading

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka import errors as kerrors

from odradek.client import Admin, Consumer
from odradek.client.errors import OdradekError
from tests.brokers import wait_until
from tests.kafka.conftest import KafkaBroker


def kafka_member(broker: KafkaBroker, group: str) -> KafkaConsumer:
    return KafkaConsumer("mixed", bootstrap_servers=broker.kafka_address, group_id=group,
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         session_timeout_ms=10_000)


async def test_a_group_speaks_one_protocol_and_shares_offsets(kafka_broker: KafkaBroker) -> None:
    async with Admin(kafka_broker.address) as admin:
        await admin.create_topic("mixed", partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.kafka_address, acks="all")
    for i in range(5):
        producer.send("mixed", b"r%d" % i)
    producer.flush(30)
    producer.close()

    stop = threading.Event()
    joined = threading.Event()

    def run_member() -> None:
        consumer = kafka_member(kafka_broker, "shared-group")
        try:
            while not stop.is_set():
                if consumer.poll(timeout_ms=300):
                    try:
                        consumer.commit()
                    except kerrors.CommitFailedError:
                        pass  # a rebalance began; committed again after the rejoin
                if consumer.assignment():
                    joined.set()
        finally:
            consumer.close()

    thread = threading.Thread(target=run_member)
    thread.start()
    try:
        await asyncio.to_thread(wait_until, joined.is_set, 60, "the Kafka member's join")
        grpc_member = Consumer(kafka_broker.address, group_id="shared-group")
        try:
            grpc_member.subscribe(["mixed"])
            with pytest.raises(OdradekError) as refused:
                for _ in range(50):
                    await grpc_member.poll(100)
            assert refused.value.reason == "INCONSISTENT_GROUP_PROTOCOL"
        finally:
            await grpc_member.close()
        async with Admin(kafka_broker.address) as admin:
            for attempt in (admin.reset_group_offsets("shared-group", ["mixed"],
                                                      to_earliest=True),
                            admin.delete_group("shared-group")):
                with pytest.raises(OdradekError) as busy:
                    await attempt
                assert busy.value.reason == "NON_EMPTY_GROUP"
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 30)

    async with Admin(kafka_broker.address) as admin:
        described = await admin.describe_group("shared-group")
        assert [p.committed_offset for p in described.partitions] == [6]
        await admin.reset_group_offsets("shared-group", {"mixed": [0]}, to_offset=3)

    def read_after_reset() -> list[bytes]:
        consumer = kafka_member(kafka_broker, "shared-group")
        consumer.config["consumer_timeout_ms"] = 5000
        try:
            return [r.value for r in consumer]
        finally:
            consumer.close()

    assert await asyncio.to_thread(read_after_reset) == [b"r2", b"r3", b"r4"]


async def test_a_group_with_grpc_members_refuses_a_kafka_member(
        kafka_broker: KafkaBroker) -> None:
    async with Admin(kafka_broker.address) as admin:
        await admin.create_topic("mixed", partitions=1)
    grpc_member = Consumer(kafka_broker.address, group_id="grpc-group")
    try:
        grpc_member.subscribe(["mixed"])
        for _ in range(100):
            await grpc_member.poll(50)
            if grpc_member.assignment():
                break
        assert grpc_member.assignment()

        def kafka_join() -> None:
            consumer = kafka_member(kafka_broker, "grpc-group")
            try:
                with pytest.raises(kerrors.InconsistentGroupProtocolError):
                    for _ in range(20):
                        consumer.poll(timeout_ms=500)
            finally:
                consumer.close()

        await asyncio.to_thread(kafka_join)
    finally:
        await grpc_member.close()
