"""`odradek topic delete-records` against three real brokers, RF=3: the start moves on every
replica, whole segments below it go, reads below it are out of range, and it holds after
the leader is killed -9 and when the killed broker comes back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from tests.brokers import BrokerProcess, ClusterProcesses, wait_until
from tests.cli import odradek
from tests.integration.test_cluster import leader_of

TOPIC = "ledger"  # the topic test_cluster.leader_of looks for


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcesses]:
    procs = ClusterProcesses(tmp_path, extra_args=["--config", "segment.bytes=4096"]).start()
    try:
        yield procs
    finally:
        procs.stop()


def ok(*args: str, stdin: str | None = None) -> str:
    r = odradek(*args, stdin=stdin)
    assert (r.returncode, r.stderr) == (0, ""), r
    return r.stdout


def local_start(broker: BrokerProcess) -> int | None:
    """The log start offset of partition 0 as the broker's own replica has it."""
    try:
        with grpc.insecure_channel(broker.address) as channel:
            desc = pb_grpc.AdminStub(channel).DescribeTopic(
                pb.DescribeTopicRequest(name=TOPIC), timeout=2)
    except grpc.RpcError:
        return None
    return int(desc.partitions[0].log_start_offset)


def segment_bases(broker: BrokerProcess) -> list[int]:
    return sorted(int(p.stem) for p in broker.data_dir.rglob("*.log")
                  if p.parent.name.startswith(f"{TOPIC}-"))


def first_offset(boot: list[str]) -> int:
    out = ok("consume", TOPIC, "-o", "beginning", "-e", "--count", "1", "--format", "json",
             *boot)
    return int(json.loads(out)["offset"])


@pytest.mark.timeout(180)
def test_delete_records_is_replicated_and_survives_kill9(cluster: ClusterProcesses) -> None:
    boot = ["--bootstrap", cluster.bootstrap]
    ok("topic", "create", TOPIC, "--replication-factor", "3", *boot)
    ok("produce", TOPIC, *boot, stdin="".join(f"record-{i:04d}-{'x' * 60}\n"
                                               for i in range(300)))
    assert first_offset(boot) == 1  # offset 0: the first leader's Raft no-op
    out = ok("topic", "delete-records", TOPIC, "--partition", "0", "--before", "150", *boot)
    assert out == f"{TOPIC}-0\tlow watermark: 150\n"
    wait_until(lambda: [local_start(b) for b in cluster.brokers] == [150] * 3, 20,
               "every replica at log start 150")
    for broker in cluster.brokers:  # segments wholly below 150 are gone, on each replica
        bases = segment_bases(broker)
        assert bases[0] <= 150 and (len(bases) == 1 or bases[1] > 150), bases
    assert first_offset(boot) == 150

    r = odradek("consume", TOPIC, "-o", "10", "-e", "--count", "1", *boot)
    assert r.returncode == 0 and r.stdout.startswith("record-"), r
    assert r.stderr == (f"note: {TOPIC}-0 starts at offset 150 (the records before it were "
                        "deleted); reading from there\n"), r

    leader = leader_of(cluster, set())
    cluster.brokers[leader].kill9()
    successor = leader_of(cluster, {leader})
    assert successor != leader
    assert local_start(cluster.brokers[successor]) == 150
    # Moving on from the new leader, then the killed broker back: it keeps both.
    out = ok("topic", "delete-records", TOPIC, "--partition", "0", "--before", "200", *boot)
    assert out == f"{TOPIC}-0\tlow watermark: 200\n"
    cluster.brokers[leader].start()
    wait_until(lambda: local_start(cluster.brokers[leader]) == 200, 30,
               "the restarted broker at log start 200")
    assert first_offset(boot) == 200


def test_bad_requests_get_one_clear_line(cluster: ClusterProcesses, tmp_path: Path) -> None:
    boot = ["--bootstrap", cluster.bootstrap]
    ok("topic", "create", TOPIC, "--replication-factor", "3", *boot)
    ok("produce", TOPIC, *boot, stdin="a\nb\nc\n")
    r = odradek("topic", "delete-records", TOPIC, "--partition", "0", "--before", "99", *boot)
    assert r.returncode == 1 and r.stdout == "", r
    assert r.stderr.startswith(f"error: {TOPIC}-0: ") and "high watermark" in r.stderr, r
    assert len(r.stderr.splitlines()) == 1, r
    with grpc.insecure_channel(cluster.brokers[0].address) as channel, \
            pytest.raises(grpc.RpcError) as caught:
        pb_grpc.AdminStub(channel).DeleteRecords(pb.DeleteRecordsRequest(
            topic="__consumer_offsets", partition=0, before_offset=0), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is internal: clients may not delete records of it" in str(caught.value.details())
    r = odradek("topic", "delete-records", TOPIC, "--partition", "0", *boot)
    assert r.returncode == 1 and "--before" in r.stderr, r

    # kafka-delete-records.sh's offsets file; -1 deletes every committed record.
    offsets = tmp_path / "offsets.json"
    offsets.write_text(json.dumps({"partitions": [{"topic": TOPIC, "partition": 0,
                                                   "offset": -1}], "version": 1}))
    out = json.loads(ok("topic", "delete-records", "--offset-json-file", str(offsets),
                        "--json", *boot))
    assert out[0]["topic"] == TOPIC and out[0]["partition"] == 0
    assert out[0]["low_watermark"] >= 3
    offsets.write_text('{"partitions": [{"topic": "x"}]}')
    r = odradek("topic", "delete-records", "--offset-json-file", str(offsets), *boot)
    assert r.returncode == 1 and "partitions[0] needs a topic" in r.stderr, r
