"""Three real broker processes on loopback: replication, failover after kill -9, a paused
leader, catch-up of a restarted broker, and the leadership a broker stopped by SIGTERM
hands off first (a pod deleted in a rolling restart)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from odradek.client import Admin
from odradek.records import encode_batch, iter_records
from odradek.storage import LogConfig, PartitionLog
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from tests.brokers import BrokerProcess, ClusterProcesses, wait_until
from tests.integration.test_client_e2e import odradek
from tests.kube import eventually

TOPIC = "ledger"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcesses]:
    procs = ClusterProcesses(tmp_path).start()
    try:
        yield procs
    finally:
        procs.stop()


def leader_of(cluster: ClusterProcesses, down: set[int], timeout: float = 20.0) -> int:
    """The broker that leads partition 0, as a live broker's own replica reports it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for broker_id, broker in enumerate(cluster.brokers):
            if broker_id in down:
                continue
            try:
                with grpc.insecure_channel(broker.address) as channel:
                    stub = pb_grpc.BrokerStub(channel)
                    stub.ListOffsets(pb.ListOffsetsRequest(
                        topic=TOPIC, partition=0, spec=pb.OFFSET_SPEC_LATEST), timeout=2)
                    return broker_id
            except grpc.RpcError:
                continue
        time.sleep(0.05)
    raise TimeoutError("no leader found")


class Writer:
    """Writes 10-record batches in a loop with acks=quorum, without retries: an error
    leaves that batch unacknowledged and the next batch goes to the current leader."""

    def __init__(self, cluster: ClusterProcesses) -> None:
        self.cluster = cluster
        self.acked: list[bytes] = []
        self.ack_times: list[float] = []
        self.down: set[int] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.n = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                leader = leader_of(self.cluster, self.down, timeout=5)
            except TimeoutError:
                continue
            with grpc.insecure_channel(self.cluster.brokers[leader].address) as channel:
                stub = pb_grpc.BrokerStub(channel)
                while not self.stop.is_set():
                    values = [b"v-%08d" % (self.n + i) for i in range(10)]
                    self.n += 10
                    batch = encode_batch([(int(time.time() * 1000), None, v) for v in values])
                    try:
                        stub.Produce(pb.ProduceRequest(topic=TOPIC, partition=0, records=batch,
                                                       acks=pb.ACKS_QUORUM, timeout_ms=3000),
                                     timeout=4)
                    except grpc.RpcError:
                        break
                    self.acked += values
                    self.ack_times.append(time.monotonic())

    def wait_acks(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.acked) >= count, f"only {len(self.acked)} acks"


def replica_values(broker: BrokerProcess) -> list[bytes]:
    log = PartitionLog.open(broker.data_dir / f"{TOPIC}-0", LogConfig())
    try:
        out: list[bytes] = []
        offset = log.log_start_offset
        while offset < log.log_end_offset:
            result = log.read(offset, 1 << 22)
            out += [r.value or b"" for r in iter_records(result.data) if r.offset >= offset]
            if result.next_offset <= offset:
                break
            offset = result.next_offset
        return out
    finally:
        log.close()


def wait_quiescent(broker: BrokerProcess) -> None:
    """Until the broker's replica of the test's one partition has gone quiet."""
    def quiet() -> bool:
        for line in broker.scrape().splitlines():
            if line.startswith("odradek_raft_quiescent_partitions "):
                return float(line.split()[1]) >= 1
        return False

    wait_until(quiet, 30, f"a quiescent Raft group on broker {broker.port}")


def create_topic(cluster: ClusterProcesses) -> None:
    with grpc.insecure_channel(cluster.brokers[0].address) as channel:
        pb_grpc.AdminStub(channel).CreateTopic(
            pb.CreateTopicRequest(name=TOPIC, partitions=1, replication_factor=3), timeout=30)


def check_replicas(cluster: ClusterProcesses, acked: list[bytes]) -> None:
    """Every replica holds the same records; each acknowledged one exactly once, in order."""
    cluster.stop()
    logs = [replica_values(b) for b in cluster.brokers]
    assert logs[0] == logs[1] == logs[2], "replicas diverge"
    stored = logs[0]
    assert len(stored) == len(set(stored)), "a record is stored twice"
    positions = {v: i for i, v in enumerate(stored)}
    missing = [v for v in acked if v not in positions]
    assert not missing, f"{len(missing)} acknowledged records lost, first {missing[0]!r}"
    assert [positions[v] for v in acked] == sorted(positions[v] for v in acked)


def wait_caught_up(cluster: ClusterProcesses, timeout: float = 30.0) -> None:
    """Until every broker's replica reports the same high watermark as the leader's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        marks = set()
        for broker in cluster.brokers:
            with grpc.insecure_channel(broker.address) as channel:
                desc = pb_grpc.AdminStub(channel).DescribeTopic(
                    pb.DescribeTopicRequest(name=TOPIC), timeout=5)
                marks.add(desc.partitions[0].high_watermark)
        if len(marks) == 1:
            return
        time.sleep(0.1)
    raise TimeoutError(f"replicas did not converge: {marks}")


@pytest.mark.timeout(180)
def test_kill9_leader_under_load(cluster: ClusterProcesses) -> None:
    create_topic(cluster)
    writer = Writer(cluster)
    writer.thread.start()
    try:
        writer.wait_acks(500)
        victim = leader_of(cluster, set())
        writer.down.add(victim)
        killed_at = time.monotonic()
        acked_before = len(writer.acked)
        cluster.brokers[victim].kill9()
        writer.wait_acks(acked_before + 500)  # a new leader takes writes
        assert leader_of(cluster, writer.down) != victim
        failover = min(t for t in writer.ack_times if t > killed_at) - killed_at
        print(f"failover: first ack {failover:.3f}s after kill -9")
        cluster.brokers[victim].start()
        writer.down.discard(victim)
        writer.wait_acks(len(writer.acked) + 200)
    finally:
        writer.stop.set()
        writer.thread.join(timeout=30)
    wait_caught_up(cluster)
    check_replicas(cluster, writer.acked)


@pytest.mark.timeout(180)
def test_paused_leader_steps_down(cluster: ClusterProcesses) -> None:
    create_topic(cluster)
    writer = Writer(cluster)
    writer.thread.start()
    try:
        writer.wait_acks(300)
        victim = leader_of(cluster, set())
        writer.down.add(victim)
        cluster.brokers[victim].signal(signal.SIGSTOP)
        try:
            writer.wait_acks(len(writer.acked) + 300)  # the others elected a leader
        finally:
            cluster.brokers[victim].signal(signal.SIGCONT)
        writer.down.discard(victim)
        writer.wait_acks(len(writer.acked) + 300)
        assert leader_of(cluster, set()) is not None
    finally:
        writer.stop.set()
        writer.thread.join(timeout=30)
    wait_caught_up(cluster)
    check_replicas(cluster, writer.acked)


@pytest.mark.timeout(120)
def test_min_insync_replicas_refuses_writes_without_enough_replicas(
        cluster: ClusterProcesses) -> None:
    with grpc.insecure_channel(cluster.brokers[0].address) as channel:
        pb_grpc.AdminStub(channel).CreateTopic(pb.CreateTopicRequest(
            name=TOPIC, partitions=1, replication_factor=3,
            configs={"min.insync.replicas": "3"}), timeout=30)
    batch = encode_batch([(1, None, b"x")])
    request = pb.ProduceRequest(topic=TOPIC, partition=0, records=batch)
    leaders: list[int] = []

    def first_write() -> bool:
        # The balancer hands leadership to the preferred replica (the first) once it is
        # caught up: wait for that, so that the leader stays put for the rest of the test.
        leaders[:] = [leader_of(cluster, set())]
        with grpc.insecure_channel(cluster.brokers[leaders[0]].address) as channel:
            described = pb_grpc.AdminStub(channel).DescribeTopic(
                pb.DescribeTopicRequest(name=TOPIC), timeout=10)
            if described.partitions[0].info.replicas[0] != leaders[0]:
                return False
            try:
                pb_grpc.BrokerStub(channel).Produce(request, timeout=10)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                return False
        return True

    wait_until(first_write, 60, "a first write at the partition's leader")
    leader = leaders[0]
    follower = (leader + 1) % 3
    with grpc.insecure_channel(cluster.brokers[leader].address) as channel:
        stub = pb_grpc.BrokerStub(channel)
        cluster.brokers[follower].kill9()
        deadline = time.monotonic() + 20
        error = None
        while time.monotonic() < deadline:
            try:
                stub.Produce(request, timeout=10)
            except grpc.RpcError as exc:
                error = exc
                break
            time.sleep(0.1)
        assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
        assert "NOT_ENOUGH_REPLICAS" in str(error.trailing_metadata()) or \
            "min.insync.replicas=3" in (error.details() or "")
        before = stub.ListOffsets(pb.ListOffsetsRequest(
            topic=TOPIC, partition=0, spec=pb.OFFSET_SPEC_LATEST), timeout=5).offset
        # acks=leader does not wait for replicas, so min.insync.replicas does not apply
        stub.Produce(pb.ProduceRequest(topic=TOPIC, partition=0, records=batch,
                                       acks=pb.ACKS_LEADER), timeout=10)
        cluster.brokers[follower].start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                reply = stub.Produce(request, timeout=10)
                break
            except grpc.RpcError:
                time.sleep(0.2)
        else:
            raise AssertionError("writes not accepted after the replica returned")
        assert reply.base_offset >= before


@pytest.mark.timeout(120)
def test_metadata_snapshots_survive_restart(tmp_path: Path) -> None:
    cluster = ClusterProcesses(tmp_path, extra_args=["--metadata-snapshot-every", "3"]).start()
    try:
        names = [f"topic-{i}" for i in range(8)]
        with grpc.insecure_channel(cluster.brokers[0].address) as channel:
            admin = pb_grpc.AdminStub(channel)
            for name in names:
                admin.CreateTopic(pb.CreateTopicRequest(name=name, partitions=1,
                                                        replication_factor=3), timeout=30)
        for broker in cluster.brokers:
            assert (broker.data_dir / "__meta" / "snapshot.json").exists()
        cluster.brokers[1].kill9()
        cluster.brokers[1].start()
        with grpc.insecure_channel(cluster.brokers[1].address) as channel:
            listed = pb_grpc.AdminStub(channel).ListTopics(pb.ListTopicsRequest(), timeout=10)
        assert [t.name for t in listed.topics] == names
    finally:
        cluster.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault", ["kill9", "sigstop"])
def test_idle_partition_fails_over(cluster: ClusterProcesses, fault: str) -> None:
    """An idle partition stops its per-partition heartbeats (quiesces); losing its leader's
    broker must still lead to a new leader, through the broker-pair liveness signal."""
    create_topic(cluster)
    batch = encode_batch([(1, None, b"first")])
    victim = leader_of(cluster, set())
    with grpc.insecure_channel(cluster.brokers[victim].address) as channel:
        pb_grpc.BrokerStub(channel).Produce(
            pb.ProduceRequest(topic=TOPIC, partition=0, records=batch), timeout=10)
    wait_quiescent(cluster.brokers[victim])
    if fault == "kill9":
        cluster.brokers[victim].kill9()
    else:
        cluster.brokers[victim].signal(signal.SIGSTOP)
    try:
        new_leader = leader_of(cluster, {victim}, timeout=30)
        assert new_leader != victim
        with grpc.insecure_channel(cluster.brokers[new_leader].address) as channel:
            pb_grpc.BrokerStub(channel).Produce(
                pb.ProduceRequest(topic=TOPIC, partition=0,
                                  records=encode_batch([(2, None, b"second")])), timeout=10)
    finally:
        if fault == "sigstop":
            cluster.brokers[victim].signal(signal.SIGCONT)
        else:
            cluster.brokers[victim].start()
    wait_caught_up(cluster)
    check_replicas(cluster, [b"first", b"second"])


@pytest.mark.timeout(60)
def test_quiesced_partition_takes_writes(cluster: ClusterProcesses) -> None:
    """After an idle spell (the group quiesces), writes need no warm-up."""
    with grpc.insecure_channel(cluster.brokers[0].address) as channel:
        pb_grpc.AdminStub(channel).CreateTopic(pb.CreateTopicRequest(
            name=TOPIC, partitions=1, replication_factor=3,
            configs={"min.insync.replicas": "3"}), timeout=30)
    for i in range(3):
        wait_quiescent(cluster.brokers[leader_of(cluster, set())])
        leader = leader_of(cluster, set())  # may have moved to the preferred replica
        with grpc.insecure_channel(cluster.brokers[leader].address) as channel:
            pb_grpc.BrokerStub(channel).Produce(pb.ProduceRequest(
                topic=TOPIC, partition=0, records=encode_batch(
                    [(i, None, b"after-idle-%d" % i)])), timeout=10)


@pytest.mark.timeout(120)
def test_cluster_health_exit_status_follows_the_replicas(cluster: ClusterProcesses) -> None:
    """`odradek cluster health` exits 0 only while every partition has a leader and all
    its replicas in sync; a killed broker makes it fail and name the partition, whichever
    broker it asks (only the leader knows who keeps up: it reports that to the metadata;
    before, a follower answered that every replica was in sync)."""
    create_topic(cluster)

    def health(*args: str, via: str = cluster.bootstrap) -> subprocess.CompletedProcess[str]:
        return odradek("cluster", "health", *args, "--bootstrap", via)

    wait_until(lambda: health("--json").returncode == 0, 60, "a healthy cluster")
    report = json.loads(health("--json").stdout)
    assert report["healthy"] is True and sorted(report["brokers"]) == [0, 1, 2]
    victim = next(i for i in range(3) if i != leader_of(cluster, set()))
    cluster.brokers[victim].kill9()
    try:
        for broker in (b for i, b in enumerate(cluster.brokers) if i != victim):
            def names_victim(address: str = broker.address) -> bool:
                text = health(via=address)
                return (text.returncode == 1 and "Healthy: no" in text.stdout
                        and f"{TOPIC}-0 (out of sync: {victim})" in text.stdout)

            wait_until(names_victim, 60, f"broker at {broker.address} to see the lost replica")
    finally:
        cluster.brokers[victim].start()
    wait_until(lambda: health().returncode == 0, 60, "healthy again after the restart")


async def test_sigterm_hands_leadership_off(cluster: ClusterProcesses) -> None:
    async with Admin(cluster.bootstrap) as admin:
        await admin.create_topic("handoff", 6, 3)

        async def leads() -> int:
            md = await admin.metadata(["handoff"])
            parts = [p for t in md.topics for p in t.partitions]
            settled = len(parts) == 6 and all(
                p.leader >= 0 and set(p.in_sync_replicas) == set(p.replicas) for p in parts)
            return sum(p.leader == 2 for p in parts) if settled else 0

        # The preferred leaders come back to each broker, broker 2 among them.
        await eventually(leads, 60, "broker 2 leading partitions in sync")
    broker = cluster.brokers[2]
    assert broker.stop() == 0
    found = re.search(r"handed leadership of (\d+)/(\d+) partitions off", broker.log())
    assert found, broker.log()[-3000:]
    handed, led = map(int, found.groups())
    assert led >= 1 and handed == led
