"""A leader that is not sure of the partition's high watermark never calls a committed
offset out of range (real processes). The partition's leader is paused past the election
timeout; the others elect a new leader and commit more records; then they are paused and
the old leader resumed, still taking itself for the leader, with a log that ends below
what consumers have already read. Before the fix it answered OFFSET_OUT_OF_RANGE, and a
consumer with auto_offset_reset=earliest read the partition again from the start."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from odradek.client import SyncConsumer, SyncProducer
from odradek.v1 import odradek_pb2 as pb
from tests.brokers import BrokerProcess, ClusterProcesses, paused_safely, wait_until

TOPIC = "tail"


@pytest.fixture
def cluster3(tmp_path: Path) -> Iterator[ClusterProcesses]:
    with paused_safely(ClusterProcesses(tmp_path, 3).start()) as cluster:
        yield cluster



def partition_seen_by(broker: BrokerProcess) -> pb.PartitionInfo | None:
    with broker.health_channel() as channel:
        stub, _ = broker.stubs(channel)
        try:
            reply = stub.Metadata(pb.MetadataRequest(topics=[TOPIC]), timeout=2)
        except grpc.RpcError:
            return None
    return reply.topics[0].partitions[0]


def leader_seen_by(broker: BrokerProcess) -> int:
    info = partition_seen_by(broker)
    return -1 if info is None else int(info.leader)


def settled_leader(brokers: list[BrokerProcess]) -> bool:
    """Every broker names the preferred replica (the first) as the leader: the balancer
    will not move it."""
    infos = [partition_seen_by(b) for b in brokers]
    epochs = {i.leader_epoch for i in infos if i is not None}
    return len(epochs) == 1 and all(i is not None and i.leader == i.replicas[0] for i in infos)


def fetch(broker: BrokerProcess, offset: int) -> pb.FetchResponse | grpc.RpcError:
    with broker.health_channel() as channel:
        stub, _ = broker.stubs(channel)
        try:
            reply: pb.FetchResponse = stub.Fetch(pb.FetchRequest(
                topic=TOPIC, partition=0, offset=offset, max_wait_ms=0), timeout=10)
            return reply
        except grpc.RpcError as exc:
            return exc


def test_a_deposed_leader_never_calls_a_committed_offset_out_of_range(
        cluster3: ClusterProcesses) -> None:
    brokers = cluster3.brokers
    with brokers[0].health_channel() as channel:
        _, admin = brokers[0].stubs(channel)
        admin.CreateTopic(pb.CreateTopicRequest(name=TOPIC, partitions=1,
                                                replication_factor=3), timeout=30)
    wait_until(lambda: settled_leader(brokers), 30, "the preferred leader")
    old = brokers[leader_seen_by(brokers[0])]
    others = [b for b in brokers if b is not old]
    with SyncProducer(cluster3.bootstrap) as producer:
        for i in range(50):
            producer.send(TOPIC, b"before-%d" % i, partition=0).result(timeout=30)
    assert leader_seen_by(others[0]) == brokers.index(old)
    old.signal(signal.SIGSTOP)
    wait_until(lambda: leader_seen_by(others[0]) in {brokers.index(b) for b in others},
               30, "a new leader")
    # Clients that do not know the paused broker (they would wait on it first).
    bootstrap = ",".join(b.address for b in others)
    with SyncProducer(bootstrap) as producer:
        for i in range(50):
            producer.send(TOPIC, b"after-%d" % i, partition=0).result(timeout=60)
    consumer = SyncConsumer(bootstrap, auto_offset_reset="earliest")
    try:
        consumer.assign([(TOPIC, 0)])
        consumer.seek_to_end((TOPIC, 0))
        committed = consumer.position((TOPIC, 0))  # a high watermark consumers have seen
        assert committed >= 100
        for broker in others:
            broker.signal(signal.SIGSTOP)
        old.signal(signal.SIGCONT)
        # The old leader's log ends about 50 records before `committed`.
        for offset in (committed, committed - 1, committed - 20):
            answer = fetch(old, offset)
            if isinstance(answer, grpc.RpcError):
                assert answer.code() != grpc.StatusCode.OUT_OF_RANGE, (
                    f"offset {offset}, committed, was called out of range by a deposed "
                    f"leader: {answer.details()}")
            else:
                assert answer.records == b""  # it has nothing there yet: nothing to say
        for broker in others:
            broker.signal(signal.SIGCONT)
        # The consumer waits at its position and reads on, from the new leader.
        with SyncProducer(bootstrap) as producer:
            producer.send(TOPIC, b"last", partition=0).result(timeout=60)
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while b"last" not in got and time.monotonic() < deadline:
            got += [r.value or b"" for r in consumer.poll(timeout_ms=500)]
        assert got == [b"last"], "the consumer reset its position or lost its place"
    finally:
        consumer.close()
