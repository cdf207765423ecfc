"""confluent-kafka through failures on a 3-broker cluster: kill -9 of a partition's
leader under an idempotent acks=all producer (every acknowledged record is there, once),
then kill -9 of the group coordinator under a two-member group, of the classic protocol
and of the consumer protocol (KIP-848) (the members find the new coordinator, join again
or go on, read every acknowledged record and commit to the end)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from odradek.client import Admin
from tests.brokers import BrokerProcess, ClusterProcesses, free_port, wait_until

pytestmark = pytest.mark.slow
RECORDS = 4000


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcesses]:
    cluster = ClusterProcesses(tmp_path, 3)
    for broker in cluster.brokers:
        port = free_port()
        broker.kafka_port = port  # type: ignore[attr-defined]
        broker.extra_args += ["--kafka-port", str(port)]
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def bootstrap(cluster: ClusterProcesses) -> str:
    return ",".join(f"127.0.0.1:{b.kafka_port}" for b in cluster.brokers)  # type: ignore[attr-defined]


def leader_of(boot: str, topic: str, partition: int) -> int:
    metadata = AdminClient({"bootstrap.servers": boot}).list_topics(topic, timeout=10)
    return int(metadata.topics[topic].partitions[partition].leader)


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_leader_and_coordinator_killed(cluster: ClusterProcesses, protocol: str) -> None:
    boot = bootstrap(cluster)
    admin = AdminClient({"bootstrap.servers": boot})
    admin.create_topics([NewTopic("ledger", num_partitions=3, replication_factor=3)])[
        "ledger"].result(timeout=30)
    wait_until(lambda: leader_of(boot, "ledger", 0) >= 0, 30, "a leader for partition 0")

    acked: dict[bytes, tuple[int, int]] = {}
    errors: list[str] = []

    def delivered(error: KafkaError | None, message: object) -> None:
        if error is not None:
            errors.append(str(error))
        else:
            acked[message.value()] = (message.partition(), message.offset())  # type: ignore[attr-defined]

    producer = Producer({"bootstrap.servers": boot, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 2, "message.timeout.ms": 120_000})
    victim: BrokerProcess | None = None
    for i in range(RECORDS):
        producer.produce("ledger", value=b"entry-%d" % i, key=b"k%d" % (i % 30),
                         on_delivery=delivered)
        producer.poll(0)
        if i == RECORDS // 3:
            producer.flush(60)
            victim = cluster.brokers[leader_of(boot, "ledger", 0)]
            victim.kill9()
        elif i % 200 == 0:
            producer.poll(0.01)  # spread the writes over the failover
    assert producer.flush(120) == 0
    assert not errors, errors[:5]
    assert len(acked) == RECORDS
    assert victim is not None
    victim.start()  # back, so that the cluster survives a second failure

    async def coordinator() -> int:
        async with Admin(cluster.bootstrap) as grpc_admin:
            return (await grpc_admin.describe_group("auditors")).coordinator_id

    got: Counter[bytes] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    assignments: list[set[int]] = [set(), set()]
    last = {p: max(o for q, o in acked.values() if q == p) for p in range(3)}

    def member(index: int) -> None:
        # On the consumer protocol the broker sets the session timeout.
        timeouts = {"session.timeout.ms": 10_000} if protocol == "classic" else {}
        consumer = Consumer({"bootstrap.servers": boot, "group.id": "auditors",
                             "group.protocol": protocol, "auto.offset.reset": "earliest",
                             "enable.auto.commit": False, **timeouts})
        consumer.subscribe(["ledger"])
        try:
            while not stop.is_set():
                message = consumer.poll(0.5)
                assignments[index] = {tp.partition for tp in consumer.assignment()}
                if message is None or message.error():
                    continue
                with lock:
                    got[message.value()] += 1
                try:
                    consumer.commit(message, asynchronous=False)
                except KafkaException:
                    pass  # the group moved: committed again after the rejoin
        finally:
            consumer.close()

    def committed_to_end() -> bool:
        async def read() -> dict[int, int]:
            async with Admin(cluster.bootstrap) as grpc_admin:
                described = await grpc_admin.describe_group("auditors")
            return {p.partition: p.committed_offset for p in described.partitions}
        try:
            return asyncio.run(read()) == {p: o + 1 for p, o in last.items()}
        except Exception:  # noqa: BLE001 - the coordinator may be moving
            return False

    threads = [threading.Thread(target=member, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(got) >= RECORDS // 4, 120, "the group reading")
        cluster.brokers[asyncio.run(coordinator())].kill9()
        wait_until(lambda: len(got) >= RECORDS and sum(map(len, assignments)) == 3
                   and committed_to_end(), 180,
                   "every acknowledged record read and committed after the kill",
                   interval=0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert set(got) == set(acked)  # nothing lost; repeats after a rejoin are allowed
