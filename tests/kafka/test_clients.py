"""kafka-python against the Kafka listener: admin (create, list, delete topics), a
consumer group of two members splitting the partitions, and records crossing protocols:
produced over gRPC and consumed over Kafka byte for byte, and the reverse."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka import errors as kerrors
from kafka.admin import NewTopic

from odradek.client import Admin, Consumer, Producer
from odradek.client import TopicPartition as OdradekTP
from tests.brokers import wait_until
from tests.kafka.conftest import KafkaBroker

BINARY = bytes(range(256)) + os.urandom(64)


def admin_client(broker: KafkaBroker) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=broker.kafka_address, request_timeout_ms=10_000)


def test_kafka_python_admin_creates_and_deletes_topics(kafka_broker: KafkaBroker) -> None:
    admin = admin_client(kafka_broker)
    try:
        admin.create_topics([NewTopic("made-by-kafka", 4, 1,
                                      topic_configs={"retention.ms": "3600000"})])
        wait_until(lambda: "made-by-kafka" in admin.list_topics(), 10, "the new topic")
        described = admin.describe_topics(["made-by-kafka"])
        assert len(described[0]["partitions"]) == 4
        admin.delete_topics(["made-by-kafka"])
        wait_until(lambda: "made-by-kafka" not in admin.list_topics(), 10, "the delete")
    finally:
        admin.close()


def _member(broker: KafkaBroker, group: str, stop: threading.Event,
            got: list[bytes], owned: list[set[TopicPartition]]) -> None:
    """One group member on its own thread, as an application runs it: kafka-python's
    join completes inside poll, so poll must not return early while it waits."""
    consumer = KafkaConsumer("shared", bootstrap_servers=broker.kafka_address,
                             group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, session_timeout_ms=10_000,
                             heartbeat_interval_ms=500)
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(r.value for r in records)
            owned[:] = [set(consumer.assignment())]
            try:
                consumer.commit()
            except kerrors.CommitFailedError:
                pass  # a rebalance began: the next poll joins again, and commits after
    finally:
        consumer.close()


def test_kafka_python_group_splits_partitions_and_commits(kafka_broker: KafkaBroker) -> None:
    asyncio.run(_create(kafka_broker, "shared", 4))
    producer = KafkaProducer(bootstrap_servers=kafka_broker.kafka_address, acks="all")
    for i in range(200):
        producer.send("shared", key=b"k%d" % i, value=b"v%d" % i)
    producer.flush(timeout=30)
    producer.close()
    stop = threading.Event()
    got: list[bytes] = []
    owned: list[list[set[TopicPartition]]] = [[], []]
    threads = [threading.Thread(target=_member, args=(kafka_broker, "workers", stop, got,
                                                      owned[i])) for i in range(2)]
    for thread in threads:
        thread.start()
    try:
        def settled() -> bool:
            sets = [o[0] if o else set() for o in owned]
            return len(got) >= 200 and all(len(s) == 2 for s in sets)
        wait_until(settled, 60, "both members with two partitions and every record")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert sorted(got) == sorted(b"v%d" % i for i in range(200))
    assert owned[0][0] | owned[1][0] == {TopicPartition("shared", p) for p in range(4)}
    ends = asyncio.run(_group_offsets(kafka_broker, "workers"))
    assert len(ends) == 4 and all(committed == end for committed, end in ends.values())


async def _create(broker: KafkaBroker, topic: str, partitions: int) -> None:
    async with Admin(broker.address) as admin:
        await admin.create_topic(topic, partitions=partitions)


async def _group_offsets(broker: KafkaBroker, group: str) -> dict[int, tuple[int, int]]:
    async with Admin(broker.address) as admin:
        described = await admin.describe_group(group)
    return {p.partition: (p.committed_offset, p.log_end_offset) for p in described.partitions}


async def test_grpc_produced_record_reads_the_same_over_kafka(kafka_broker: KafkaBroker) -> None:
    await _create(kafka_broker, "crossing", 1)
    async with Producer(kafka_broker.address, compression="zstd") as producer:
        meta = await (await producer.send("crossing", BINARY, key=b"\x00key\xff",
                                          headers=[("h", b"\x01\x02"), ("empty", None)],
                                          timestamp_ms=1_700_000_000_123))

    def consume() -> list[object]:
        consumer = KafkaConsumer(bootstrap_servers=kafka_broker.kafka_address,
                                 enable_auto_commit=False, consumer_timeout_ms=5000)
        try:
            tp = TopicPartition("crossing", 0)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            return list(consumer)
        finally:
            consumer.close()

    records = await asyncio.to_thread(consume)
    assert len(records) == 1
    record = records[0]
    assert record.offset == meta.offset  # type: ignore[attr-defined]
    assert record.value == BINARY and record.key == b"\x00key\xff"  # type: ignore[attr-defined]
    assert record.headers == [("h", b"\x01\x02"), ("empty", None)]  # type: ignore[attr-defined]
    assert record.timestamp == 1_700_000_000_123  # type: ignore[attr-defined]


async def test_kafka_produced_record_reads_the_same_over_grpc(kafka_broker: KafkaBroker) -> None:
    await _create(kafka_broker, "reverse", 1)

    def produce() -> int:
        producer = KafkaProducer(bootstrap_servers=kafka_broker.kafka_address, acks="all",
                                 compression_type="gzip")
        try:
            future = producer.send("reverse", key=b"\xffk", value=BINARY,
                                   headers=[("trace", b"\x00\x01")],
                                   timestamp_ms=1_700_000_000_456)
            return int(future.get(timeout=30).offset)
        finally:
            producer.close()

    offset = await asyncio.to_thread(produce)
    consumer = Consumer(kafka_broker.address, fetch_max_wait_ms=100)
    try:
        tp = OdradekTP("reverse", 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got = []
        for _ in range(50):
            got.extend(await consumer.poll(timeout_ms=200))
            if got:
                break
    finally:
        await consumer.close()
    assert [(r.offset, r.key, r.value, tuple(r.headers), r.timestamp) for r in got] == [
        (offset, b"\xffk", BINARY, (("trace", b"\x00\x01"),), 1_700_000_000_456)]


def test_kafka_python_group_admin_lists_describes_and_deletes(kafka_broker: KafkaBroker) -> None:
    asyncio.run(_create(kafka_broker, "shared", 2))
    stop = threading.Event()
    owned: list[set[TopicPartition]] = []
    thread = threading.Thread(target=_member, args=(kafka_broker, "viewers", stop, [], owned))
    thread.start()
    admin = admin_client(kafka_broker)
    try:
        wait_until(lambda: bool(owned and len(owned[0]) == 2), 60, "the member's assignment")
        listed = admin.list_groups()
        assert {"group_id": "viewers", "protocol_type": "consumer",
                "group_state": "Stable"}.items() <= next(
            g for g in listed if g["group_id"] == "viewers").items()
        group = admin.describe_groups(["viewers"])["viewers"]
        assert group["error"] is None
        assert group["group_state"] == "Stable" and group["protocol_type"] == "consumer"
        assert len(group["members"]) == 1
        assignment = group["members"][0]["member_assignment"]
        assert [(t["topic"], sorted(t["partitions"]))
                for t in assignment["assigned_partitions"]] == [("shared", [0, 1])]
        stop.set()
        thread.join(timeout=30)
        wait_until(lambda: admin.describe_groups(["viewers"])["viewers"]["group_state"]
                   == "Empty", 30, "the group empty after its member left")
        deleted = admin.delete_groups(["viewers"])
        assert "viewers" in str(deleted) and "Error" not in str(deleted), deleted
        assert admin.describe_groups(["viewers"])["viewers"]["group_state"] == "Dead"
    finally:
        stop.set()
        thread.join(timeout=30)
        admin.close()


def test_kafka_python_deletes_a_groups_offsets(kafka_broker: KafkaBroker) -> None:
    asyncio.run(_create(kafka_broker, "trimmed", 2))
    admin = admin_client(kafka_broker)
    try:
        offsets = {TopicPartition("trimmed", 0): OffsetAndMetadata(5, "", -1),
                   TopicPartition("trimmed", 1): OffsetAndMetadata(7, "", -1)}

        def committed() -> bool:
            # The first group call creates __consumer_offsets: its coordinator answers
            # retriable errors until it has loaded, which kafka-python's admin does not
            # retry.
            try:
                answer = admin.alter_group_offsets("archivists", offsets)
            except (kerrors.NotCoordinatorError, kerrors.CoordinatorLoadInProgressError,
                    kerrors.CoordinatorNotAvailableError):
                return False
            return all(error is kerrors.NoError for error in answer.values())

        wait_until(committed, 30, "the offsets committed through Kafka")
        assert {tp.partition: o.offset for tp, o in
                admin.list_group_offsets("archivists")["archivists"].items()} == {0: 5, 1: 7}
        deleted = admin.delete_group_offsets("archivists", [TopicPartition("trimmed", 0)])
        assert all(error is kerrors.NoError for error in deleted.values()), deleted
        assert {tp.partition: o.offset for tp, o in
                admin.list_group_offsets("archivists")["archivists"].items()} == {1: 7}
    finally:
        admin.close()


def test_an_unknown_topic_gets_the_codes_clients_expect(kafka_broker: KafkaBroker) -> None:
    from confluent_kafka import KafkaError, Producer

    failures: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": kafka_broker.kafka_address,
                         "message.timeout.ms": 10_000,
                         "topic.metadata.propagation.max.ms": 1000})
    producer.produce("ghost", b"x", on_delivery=lambda e, _m: failures.append(e))
    producer.flush(15)
    assert [f.code() for f in failures] in ([KafkaError.UNKNOWN_TOPIC_OR_PART],
                                            [KafkaError._UNKNOWN_TOPIC])
    kp = KafkaProducer(bootstrap_servers=kafka_broker.kafka_address, max_block_ms=2000)
    try:
        with pytest.raises(kerrors.KafkaTimeoutError):  # no auto-creation: metadata waits
            kp.send("ghost", b"x").get(timeout=10)
    finally:
        kp.close()
    admin = admin_client(kafka_broker)
    try:
        with pytest.raises(kerrors.UnknownTopicOrPartitionError):
            admin.delete_topics(["ghost"])
    finally:
        admin.close()
    # What an on-call engineer sees of it: the error codes the clients were given.
    metrics = kafka_broker.scrape()
    for api in ("Metadata", "DeleteTopics"):
        assert f'odradek_kafka_errors_total{{api="{api}",error="unknown_topic_or_partition"}}' \
            in metrics, api
