"""Kafka's consumer group protocol (KIP-848, confluent-kafka's group.protocol=consumer)
against Odradek's coordinator: two members split a topic's partitions without overlap and
read every record once; their commits are the group's offsets gRPC sees; when one leaves
the other is given its partitions; a classic member cannot join the group meanwhile."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

from confluent_kafka import Consumer, KafkaException, Producer
from kafka import KafkaConsumer
from kafka import errors as kerrors

from odradek.client import Admin
from tests.brokers import wait_until
from tests.kafka.conftest import KafkaBroker

PARTITIONS = 4
RECORDS = 200


def _member(broker: KafkaBroker, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": broker.kafka_address, "group.id": group,
                     "group.protocol": "consumer", "auto.offset.reset": "earliest",
                     "enable.auto.commit": False})


class _Member(threading.Thread):
    """A consumer polling in its own thread, committing each record it reads."""

    def __init__(self, broker: KafkaBroker, group: str, got: Counter[bytes],
                 lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.consumer = _member(broker, group)
        self.got, self.lock = got, lock
        self.read_to: dict[int, int] = {}  # partition -> the offset after the last read
        self.stop = threading.Event()
        self.assignment: set[int] = set()
        self.errors: list[str] = []

    def run(self) -> None:
        self.consumer.subscribe(["ledger"])
        try:
            while not self.stop.is_set():
                message = self.consumer.poll(0.2)
                self.assignment = {tp.partition for tp in self.consumer.assignment()}
                if message is None:
                    continue
                if message.error():
                    self.errors.append(str(message.error()))
                    continue
                with self.lock:
                    self.got[message.value()] += 1
                    self.read_to[message.partition()] = max(
                        self.read_to.get(message.partition(), 0), message.offset() + 1)
                try:
                    self.consumer.commit(message, asynchronous=False)
                except KafkaException as exc:
                    self.errors.append(str(exc))
        finally:
            self.consumer.close()


def test_consumer_protocol_members_share_partitions_and_offsets(
        kafka_broker: KafkaBroker) -> None:
    async def setup() -> None:
        async with Admin(kafka_broker.address) as admin:
            await admin.create_topic("ledger", partitions=PARTITIONS)
    asyncio.run(setup())
    producer = Producer({"bootstrap.servers": kafka_broker.kafka_address, "acks": "all"})
    for i in range(RECORDS):
        producer.produce("ledger", value=b"r%d" % i, key=b"k%d" % i)
    assert producer.flush(30) == 0

    got: Counter[bytes] = Counter()
    lock = threading.Lock()
    members = [_Member(kafka_broker, "auditors", got, lock) for _ in range(2)]
    for member in members:
        member.start()
    try:
        def split() -> bool:
            a, b = (m.assignment for m in members)
            return len(a) + len(b) == PARTITIONS and not a & b and bool(a) and bool(b)

        wait_until(split, 60, "both members assigned, without overlap")
        wait_until(lambda: len(got) == RECORDS, 60, "every record read")

        async def committed() -> dict[int, int]:
            async with Admin(kafka_broker.address) as admin:
                described = await admin.describe_group("auditors")
            return {p.partition: p.committed_offset for p in described.partitions}

        read_to = {p: o for m in members for p, o in m.read_to.items()}
        assert len(read_to) == PARTITIONS
        wait_until(lambda: asyncio.run(committed()) == read_to, 30,
                   "the members' commits in the group's offsets")

        # A classic member may not join a group of the consumer protocol.
        classic = KafkaConsumer("ledger", bootstrap_servers=kafka_broker.kafka_address,
                                group_id="auditors", session_timeout_ms=10_000)
        try:
            try:
                classic.poll(timeout_ms=5000)
                refused = False
            except kerrors.InconsistentGroupProtocolError:
                refused = True
            assert refused or not classic.assignment()
        finally:
            classic.close()

        leaving = members.pop()
        leaving.stop.set()
        leaving.join(timeout=30)
        wait_until(lambda: members[0].assignment == set(range(PARTITIONS)), 60,
                   "the remaining member given every partition")
    finally:
        for member in members:
            member.stop.set()
        for member in members:
            member.join(timeout=30)
    assert all(count == 1 for count in got.values()), got.most_common(3)
    assert not [e for m in members for e in m.errors], [m.errors for m in members]
