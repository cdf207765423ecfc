"""Real-process fault tests (root only: network namespaces, tmpfs mounts, nftables).

test_short_schedule is `make test`'s chaos run: one seeded schedule of CHAOS_DURATION
seconds (default 60; CHAOS_SEED picks the seed, default 1). `make chaos DURATION=...`
runs long ones. The other tests pin one fault each to what the issue asks of it."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from odradek.records import encode_batch, iter_records
from odradek.v1 import odradek_pb2 as pb
from tests.brokers import wait_until
from tests.chaos.cluster import TOPIC_CONFIGS, ChaosBroker, ChaosCluster
from tests.chaos.net import RELAY_IN, RELAY_OUT, run, unavailable
from tests.chaos.run import run_chaos

REASON = unavailable()
pytestmark = [pytest.mark.skipif(REASON is not None, reason=f"chaos: {REASON}"),
              pytest.mark.slow, pytest.mark.timeout(300)]
TOPIC = "faults"


@pytest.fixture
def cluster3(tmp_path: Path) -> Iterator[ChaosCluster]:
    cluster = ChaosCluster(tmp_path, 3).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_short_schedule(tmp_path: Path) -> None:
    seed = int(os.environ.get("CHAOS_SEED", "1"))
    duration = float(os.environ.get("CHAOS_DURATION", "60"))
    report = run_chaos(seed, duration, 5, root=tmp_path)
    assert sum(report.faults.values()) > 0
    assert not report.violations, "\n".join(map(str, report.violations)) + \
        f"\nreplay: {report.replay}"


def leader_of(cluster: ChaosCluster) -> ChaosBroker:
    found: list[ChaosBroker] = []

    def known() -> bool:
        for broker in cluster.brokers:
            with broker.health_channel() as channel:
                stub, _ = broker.stubs(channel)
                try:
                    info = stub.Metadata(pb.MetadataRequest(topics=[TOPIC]),
                                         timeout=2).topics[0].partitions[0]
                except (grpc.RpcError, IndexError):
                    continue
                if info.leader >= 0:
                    found[:] = [cluster.brokers[info.leader]]
                    return True
        return False
    wait_until(known, 30, f"a leader of {TOPIC}-0")
    return found[0]


def create(cluster: ChaosCluster, configs: dict[str, str] | None = None) -> None:
    broker = cluster.brokers[0]
    with broker.health_channel() as channel:
        _, admin = broker.stubs(channel)
        admin.CreateTopic(pb.CreateTopicRequest(name=TOPIC, partitions=1, replication_factor=3,
                                                configs={**TOPIC_CONFIGS, **(configs or {})}),
                          timeout=30)


def produce(broker: ChaosBroker, value: bytes, timeout: float = 10) -> pb.ProduceResponse:
    with broker.health_channel() as channel:
        stub, _ = broker.stubs(channel)
        reply: pb.ProduceResponse = stub.Produce(pb.ProduceRequest(
            topic=TOPIC, partition=0, records=encode_batch([(1, None, value)])),
            timeout=timeout)
        return reply


def produce_soon(cluster: ChaosCluster, value: bytes, timeout: float = 60) -> int:
    """Produces value at the leader, following leader changes; its offset."""
    offsets: list[int] = []

    def done() -> bool:
        try:
            offsets.append(produce(leader_of(cluster), value, 5).base_offset)
        except grpc.RpcError:
            return False
        return True
    wait_until(done, timeout, f"{value!r} acknowledged", interval=0.2)
    return offsets[0]


def read(broker: ChaosBroker) -> list[bytes]:
    """Every value up to the high watermark (a fetch returns one segment's batches)."""
    out: list[bytes] = []
    offset = 0
    with broker.health_channel() as channel:
        stub, _ = broker.stubs(channel)
        while True:
            reply = stub.Fetch(pb.FetchRequest(topic=TOPIC, partition=0, offset=offset,
                                               max_bytes=1 << 20, max_wait_ms=0), timeout=10)
            out += [r.value or b"" for r in iter_records(reply.records) if r.offset >= offset]
            if not reply.records or reply.next_offset >= reply.high_watermark:
                return out
            offset = reply.next_offset


def test_full_disk_refuses_writes_serves_reads_and_recovers(cluster3: ChaosCluster) -> None:
    create(cluster3)
    for i in range(20):
        produce_soon(cluster3, b"before-%d" % i)
    leader = leader_of(cluster3)
    leader.fill_disk()
    try:
        with pytest.raises(grpc.RpcError) as refused:
            produce(leader, b"x" * 8192, timeout=10)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (
            f"{refused.value.code()}: {refused.value.details()}")
        assert "disk" in (refused.value.details() or "").lower()
        assert read(leader)[:20] == [b"before-%d" % i for i in range(20)]
    finally:
        leader.free_disk()
    produce_soon(cluster3, b"after")
    assert b"after" in read(leader_of(cluster3))


def test_a_follower_whose_disk_filled_catches_up(cluster3: ChaosCluster) -> None:
    """Before the fix the follower's Raft group stopped for good at its first failed
    persist, and its files kept what they had when the disk filled."""
    create(cluster3)
    leader = leader_of(cluster3)
    follower = next(b for b in cluster3.brokers if b is not leader)
    produce_soon(cluster3, b"before")
    follower.fill_disk()
    try:
        for i in range(100):
            produce_soon(cluster3, b"full-%d" % i)
    finally:
        follower.free_disk()
    produce_soon(cluster3, b"after")
    expected = read(leader_of(cluster3))
    wait_until(lambda: replica_records(cluster3, follower) == expected, 60,
               "the follower to hold what the leader holds")


def replica_records(cluster: ChaosCluster, broker: ChaosBroker) -> list[bytes]:
    """What broker's files hold (read while it runs: whole batches only)."""
    del cluster
    records, _ = broker.stored(TOPIC).get(0, ([], None))
    return [v for _, v in records]


def fail_fsync_on_a_majority(cluster: ChaosCluster) -> list[ChaosBroker]:
    create(cluster)
    produce_soon(cluster, b"before")
    leader = leader_of(cluster)
    majority = [leader, next(b for b in cluster.brokers if b is not leader)]
    for broker in majority:
        broker.fsync_mode("fail")
    return majority


def test_a_failed_fsync_is_never_acknowledged(cluster3: ChaosCluster) -> None:
    """With a majority unable to fsync, nothing is acknowledged."""
    leader, _ = fail_fsync_on_a_majority(cluster3)
    for i in range(3):
        with pytest.raises(grpc.RpcError):
            produce(leader, b"during-%d" % i, timeout=8)


def test_writes_resume_after_fsync_failures_end(cluster3: ChaosCluster) -> None:
    for broker in fail_fsync_on_a_majority(cluster3):
        with pytest.raises(grpc.RpcError):
            produce(broker, b"during", timeout=8)
        broker.fsync_mode("ok")
    cluster3.heal()
    produce_soon(cluster3, b"after")
    for broker in cluster3.brokers:
        broker.kill9()
    cluster3.heal()
    wait_until(lambda: b"after" in _safe_read(cluster3), 60, "the log served again")
    assert _safe_read(cluster3).count(b"before") == 1


def _safe_read(cluster: ChaosCluster) -> list[bytes]:
    try:
        return read(leader_of(cluster))
    except grpc.RpcError:
        return []


@pytest.mark.parametrize("stop", ["kill-9", "clean"])
def test_a_corrupt_minority_replica_is_repaired_and_never_served(
        cluster3: ChaosCluster, stop: str) -> None:
    """Small segments, so that the flip can land in a sealed one, which a start trusts (a
    clean one always; after kill -9 those below the recovery point): then the CRC check
    on read finds it (here the scrub's, at start), not recovery."""
    create(cluster3, {"segment.bytes": "1024"})
    for i in range(50):
        produce_soon(cluster3, b"v-%d" % i)
    leader = leader_of(cluster3)
    victim = next(b for b in cluster3.brokers if b is not leader)
    if stop == "clean":
        victim.stop()
    else:
        victim.kill9()
    assert victim.flip_bit(TOPIC, random.Random(3)) is not None
    # Not waiting for it to be ready first: recovery cut it below its commit index, so
    # it neither votes nor campaigns, and the partition's leader, quiet after the writes,
    # talks to it again only on the next write (an idle partition's cut replica waits
    # for one: left for the corruption repair on branch crc, which makes it speak up).
    victim.start(wait=False)
    produce_soon(cluster3, b"after")
    expected = read(leader_of(cluster3))
    wait_until(lambda: victim.alive and replica_records(cluster3, victim) == expected, 60,
               "the corrupt replica repaired")
    for broker in cluster3.brokers:
        broker.stop()
    stored = [b.stored(TOPIC)[0] for b in cluster3.brokers]
    assert all(bad is None for _, bad in stored), stored
    assert stored[0][0] == stored[1][0] == stored[2][0]


def relayed(cluster: ChaosCluster, i: int) -> int:
    """How many TCP connections broker i's delay relay holds."""
    out = run("ip", "netns", "exec", cluster.net.namespaces[i], "ss", "-Htn", "state",
              "established", f"( sport = :{RELAY_OUT} or sport = :{RELAY_IN} )").stdout
    return len(out.splitlines())


def test_a_delayed_broker_sends_through_the_relay_and_loses_nothing(
        cluster3: ChaosCluster) -> None:
    """Without netem the delay is the relay's: the delayed broker's connections, to the
    others and from them, are reset and come back through it, and what it sends waits out
    the delay, so a health check on an open channel takes at least that long (a lower
    bound, which no speed of the machine breaks); the log loses nothing meanwhile."""
    create(cluster3)
    produce_soon(cluster3, b"before")
    if "reorder" not in cluster3.net.missing:
        pytest.skip("this kernel has netem: the delay is netem's, not the relay's")
    delayed = cluster3.brokers[0]
    cluster3.net.delay(delayed.index, 300, 0)
    try:
        with delayed.health_channel() as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            check(health_pb2.HealthCheckRequest(), timeout=10)  # connected through it
            started = time.monotonic()
            check(health_pb2.HealthCheckRequest(), timeout=10)
            assert time.monotonic() - started >= 0.3
        wait_until(lambda: relayed(cluster3, delayed.index) >= 2, 30,
                   "the broker connections back through the relay")
        values = [b"delayed-%d" % i for i in range(5)]
        for value in values:
            produce_soon(cluster3, value)
    finally:
        cluster3.net.heal()
    assert relayed(cluster3, delayed.index) == 0
    produce_soon(cluster3, b"after")
    assert read(leader_of(cluster3)) == [b"before", *values, b"after"]
