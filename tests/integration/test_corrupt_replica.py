"""A bit flipped at rest in a replica that was stopped cleanly: a clean start trusts its
sealed segments without reading them, so the corruption shows only when a batch is read.
It must then be refused (never served), counted, and repaired from the other replicas."""

from __future__ import annotations

from pathlib import Path

import grpc

from odradek.records import encode_batch, iter_batches, iter_records
from odradek.records.batch import InvalidRecordError, check_batch
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from tests.brokers import ClusterProcesses, wait_until

TOPIC = "ledger"
BATCHES = 40


def describe(cluster: ClusterProcesses) -> pb.PartitionInfo | None:
    for broker in cluster.brokers:
        try:
            with grpc.insecure_channel(broker.address) as channel:
                topic = pb_grpc.AdminStub(channel).DescribeTopic(
                    pb.DescribeTopicRequest(name=TOPIC), timeout=2)
            return topic.partitions[0].info
        except grpc.RpcError:
            continue
    return None


def leads(cluster: ClusterProcesses, broker_id: int) -> bool:
    """Does broker_id answer as the leader of partition 0 (its own replica says so)?"""
    try:
        with grpc.insecure_channel(cluster.brokers[broker_id].address) as channel:
            pb_grpc.BrokerStub(channel).ListOffsets(pb.ListOffsetsRequest(
                topic=TOPIC, partition=0, spec=pb.OFFSET_SPEC_LATEST), timeout=2)
        return True
    except grpc.RpcError:
        return False


def fetch_all(address: str, upto: int) -> list[tuple[int, bytes]]:
    """Every (offset, value) below upto from one broker. A CRC error in what it serves
    raises InvalidRecordError (the consumer would see corrupt data); a retriable refusal
    raises grpc.RpcError."""
    out: list[tuple[int, bytes]] = []
    offset = 0
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.BrokerStub(channel)
        while offset < upto:
            reply = stub.Fetch(pb.FetchRequest(topic=TOPIC, partition=0, offset=offset,
                                               max_bytes=1 << 20), timeout=5)
            out += [(r.offset, r.value or b"") for r in iter_records(reply.records)
                    if r.offset >= offset]
            if not reply.records:
                break
            offset = reply.next_offset
    return out


def flip_bit_in_a_committed_batch(partition_dir: Path) -> str:
    """Flips a bit inside the 4th data batch of the first (sealed) segment, past the CRC
    field so that the CRC covers it (as tests/chaos/cluster.py flip_bit does)."""
    segment = sorted(partition_dir.glob("*.log"))[0]
    raw = bytearray(segment.read_bytes())
    data = [(pos, h) for pos, h in iter_batches(bytes(raw)) if not h.is_control]
    pos, header = data[3]
    at = pos + 21 + header.size // 2
    raw[at] ^= 0x10
    segment.write_bytes(bytes(raw))
    return f"{segment} byte {at}"


def stored_values(partition_dir: Path) -> list[tuple[int, bytes]]:
    """A stopped replica's data records read from its files, every batch CRC-checked."""
    out: list[tuple[int, bytes]] = []
    for segment in sorted(partition_dir.glob("*.log")):
        raw = segment.read_bytes()
        for pos, header in iter_batches(raw):
            check_batch(raw, pos, pos + header.size)
        out += [(r.offset, r.value or b"") for r in iter_records(raw)]
    return out


def written(cluster: ClusterProcesses) -> tuple[int, list[tuple[int, bytes]]]:
    """Makes the topic, waits for its preferred replica to lead, writes BATCHES batches
    with acks=quorum and waits for every replica to hold them: (the preferred replica,
    what was acknowledged)."""
    with grpc.insecure_channel(cluster.brokers[0].address) as channel:
        pb_grpc.AdminStub(channel).CreateTopic(
            pb.CreateTopicRequest(name=TOPIC, partitions=1, replication_factor=3), timeout=10)
    wait_until(lambda: (i := describe(cluster)) is not None and i.leader >= 0, 20,
               "a leader for the partition")
    info = describe(cluster)
    assert info is not None
    preferred = info.replicas[0]
    # The balancer hands leadership to the preferred replica.
    wait_until(lambda: leads(cluster, preferred), 30, "the preferred replica to lead")
    acked: list[tuple[int, bytes]] = []
    with grpc.insecure_channel(cluster.brokers[preferred].address) as channel:
        stub = pb_grpc.BrokerStub(channel)
        for b in range(BATCHES):
            values = [b"value-%03d-%d" % (b, i) + b"x" * 100 for i in range(5)]
            reply = stub.Produce(pb.ProduceRequest(
                topic=TOPIC, partition=0, records=encode_batch(
                    [(1000 + b, None, v) for v in values]), acks=pb.ACKS_QUORUM), timeout=10)
            acked += [(reply.base_offset + i, v) for i, v in enumerate(values)]
    wait_until(lambda: (i := describe(cluster)) is not None
               and len(i.in_sync_replicas) == 3, 30, "every replica in sync")
    return preferred, acked


def test_a_corrupt_batch_in_a_cleanly_stopped_replica_is_never_served_and_is_repaired(
        tmp_path: Path) -> None:
    # No scrub: the corruption is found by the fetch, on the leader.
    cluster = ClusterProcesses(tmp_path, extra_args=["--config", "segment.bytes=4096",
                                                     "--scrub-bytes-per-second", "0"])
    cluster.start()
    try:
        preferred, acked = written(cluster)
        end = acked[-1][0] + 1
        victim = cluster.brokers[preferred]
        victim.stop()  # cleanly: the next start trusts its sealed segments
        assert (victim.data_dir / f"{TOPIC}-0" / ".clean_shutdown").exists()
        flip_bit_in_a_committed_batch(victim.data_dir / f"{TOPIC}-0")
        victim.start()
        wait_until(lambda: leads(cluster, preferred), 60, "the corrupted replica to lead")

        # A consumer reading from whoever leads: retriable refusals are fine, corrupt
        # records never.
        def consumed_all() -> bool:
            for broker in cluster.brokers:
                try:
                    got = fetch_all(broker.address, end)
                except grpc.RpcError:
                    continue
                except InvalidRecordError as exc:
                    raise AssertionError(f"broker at {broker.address} served a corrupt "
                                         f"batch: {exc}") from None
                if got:
                    assert got == acked
                    return True
            return False

        wait_until(consumed_all, 60, "every acknowledged record consumed")
        wait_until(lambda: "odradek_corrupt_batches_total" in victim.scrape()
                   and _counter(victim.scrape(), "odradek_corrupt_batches_total") >= 1,
                   30, "the corruption counted")
        # Repaired: the corrupted replica leads again (the balancer) and serves it all.
        wait_until(lambda: leads(cluster, preferred), 60, "the repaired replica to lead")

        def victim_serves_all() -> bool:
            try:
                return fetch_all(victim.address, end) == acked
            except grpc.RpcError:
                return False

        wait_until(victim_serves_all, 60, "the repaired replica to serve every record")
        assert "corrupt" in victim.log().lower()
        wait_until(lambda: (i := describe(cluster)) is not None
                   and len(i.in_sync_replicas) == 3, 30, "every replica in sync again")
    finally:
        cluster.stop()
    for broker in cluster.brokers:
        stored = stored_values(broker.data_dir / f"{TOPIC}-0")
        assert stored[: len(acked)] == acked, f"{broker.data_dir} differs"


def _counter(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith(name + "_created"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_the_scrub_finds_and_repairs_a_corrupt_follower_nobody_reads(tmp_path: Path) -> None:
    cluster = ClusterProcesses(tmp_path, extra_args=["--config", "segment.bytes=4096"])
    cluster.start()
    try:
        preferred, acked = written(cluster)
        victim = next(b for i, b in enumerate(cluster.brokers) if i != preferred)
        victim.stop()
        partition_dir = victim.data_dir / f"{TOPIC}-0"
        flip_bit_in_a_committed_batch(partition_dir)
        victim.start()

        def repaired() -> bool:
            try:
                return stored_values(partition_dir)[: len(acked)] == acked
            except InvalidRecordError:
                return False

        wait_until(repaired, 60, "the follower's files repaired")
        assert _counter(victim.scrape(), "odradek_corrupt_batches_total") >= 1
        assert leads(cluster, preferred)  # found and repaired without leading
    finally:
        cluster.stop()
