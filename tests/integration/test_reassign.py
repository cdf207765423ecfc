"""Moving replicas between real broker processes: reassignment and draining a broker,
by single-server membership changes, while the data stays readable."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from odradek.client import SyncAdmin, SyncProducer
from odradek.v1 import odradek_pb2 as pb
from tests.brokers import ClusterProcesses
from tests.cli import odradek
from tests.integration.test_cluster import replica_values


@pytest.fixture
def cluster4(tmp_path: Path) -> Iterator[ClusterProcesses]:
    procs = ClusterProcesses(tmp_path, count=4).start()
    try:
        yield procs
    finally:
        procs.stop()


def wait_replicas(admin: SyncAdmin, topic: str, partition: int, want: list[int],
                  timeout: float = 60.0) -> pb.PartitionInfo:
    deadline = time.monotonic() + timeout
    info = None
    while time.monotonic() < deadline:
        info = admin.describe_topic(topic).partitions[partition].info
        if list(info.replicas) == want and not info.target_replicas and info.leader >= 0:
            return info
        time.sleep(0.1)
    raise TimeoutError(f"replicas of {topic}-{partition} stuck at {info}")


@pytest.mark.timeout(180)
def test_reassign_partition_to_another_broker(cluster4: ClusterProcesses) -> None:
    admin = SyncAdmin(cluster4.bootstrap)
    try:
        admin.create_topic("ledger", partitions=1, replication_factor=3)
        start = list(admin.describe_topic("ledger").partitions[0].info.replicas)
        spare = ({0, 1, 2, 3} - set(start)).pop()
        target = [spare, *start[1:]]
        with SyncProducer(cluster4.bootstrap) as producer:
            for i in range(200):
                producer.send("ledger", b"before-%d" % i).result(timeout=30)
        admin.reassign_partition("ledger", 0, target)
        wait_replicas(admin, "ledger", 0, target)
        with SyncProducer(cluster4.bootstrap) as producer:
            for i in range(200):
                producer.send("ledger", b"after-%d" % i).result(timeout=30)
        with pytest.raises(Exception, match="INVALID_REPLICA_ASSIGNMENT|BROKER_NOT_AVAILABLE"):
            admin.reassign_partition("ledger", 0, [0, 0, 1])
    finally:
        admin.close()
    removed = cluster4.brokers[start[0]]
    deadline = time.monotonic() + 30
    while (removed.data_dir / "ledger-0").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (removed.data_dir / "ledger-0").exists(), "the old replica was not removed"
    cluster4.stop()
    expected = [b"before-%d" % i for i in range(200)] + [b"after-%d" % i for i in range(200)]
    logs = [replica_values(cluster4.brokers[b]) for b in target]
    assert logs[0] == logs[1] == logs[2], "replicas diverge"
    # Leadership may move while the producer sends (the preferred replica takes over); the
    # idempotent producer's retries must not store a batch twice.
    assert logs[0] == expected


@pytest.mark.timeout(180)
def test_drain_broker_moves_every_replica(cluster4: ClusterProcesses) -> None:
    admin = SyncAdmin(cluster4.bootstrap)
    try:
        admin.create_topic("spread", partitions=4, replication_factor=2)
        plan = admin.drain_broker(3, validate_only=True)
        before = admin.describe_topic("spread")
        assert len(plan.moves) == sum(3 in p.info.replicas for p in before.partitions)
        admin.drain_broker(3)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            parts = admin.describe_topic("spread").partitions
            if all(3 not in p.info.replicas and not p.info.target_replicas
                   and len(p.info.replicas) == 2 for p in parts):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"drain did not finish: {parts}")
        admin.create_topic("after-drain", partitions=6, replication_factor=2)
        placed = admin.describe_topic("after-drain").partitions
        assert all(3 not in p.info.replicas for p in placed), "placed on a draining broker"
    finally:
        admin.close()



@pytest.mark.timeout(180)
def test_describe_after_a_reassignment_to_fewer_replicas(cluster4: ClusterProcesses) -> None:
    boot = ["--bootstrap", cluster4.bootstrap]
    created = odradek("topic", "create", "narrow", "--replication-factor", "3", *boot)
    assert created.returncode == 0, created.stderr
    with SyncAdmin(cluster4.bootstrap) as admin:
        start = list(admin.describe_topic("narrow").partitions[0].info.replicas)
    target = start[:2]
    ids = ",".join(map(str, target))
    moved = odradek("partition", "reassign", "narrow", "0", "--replicas", ids, "--wait", *boot)
    assert moved.returncode == 0, moved.stderr
    started, done = moved.stdout.splitlines()
    assert started == f"reassignment of narrow-0 to {ids} started"
    # --wait returns once the move is over: the replicas are the target's.
    assert done.startswith(f"narrow-0: replicas {ids}, in sync ")
    assert done.endswith("; no reassignment under way")
    status = odradek("partition", "reassign", "narrow", "0", "--status", *boot)
    assert status.stdout.startswith(f"narrow-0: replicas {ids}, in sync ")
    missing = odradek("partition", "reassign", "narrow", "5", "--status", *boot)
    assert (missing.returncode, missing.stderr) == (
        1, "error: topic narrow has no partition 5 (it has 1) (UNKNOWN_TOPIC_OR_PARTITION)\n")
    text = odradek("topic", "describe", "narrow", *boot)
    assert text.returncode == 0, text.stderr
    assert "\tReplicationFactor: 2" in text.stdout.splitlines()[0]
    described = json.loads(odradek("topic", "describe", "narrow", "--json", *boot).stdout)
    assert described["replication_factor"] == 2
    partition = described["partitions"][0]
    # Zeros are kept (partition 0 is a partition) and int64 fields are JSON numbers.
    assert partition["info"]["partition"] == 0 and partition["info"]["replicas"] == target
    assert partition["log_start_offset"] == 0
    assert isinstance(partition["high_watermark"], int)
