"""The idempotent producer with real broker processes: retries across a leader kill store
nothing twice; a resent batch gets its original offset, a gap and a fenced epoch get clear
statuses; the sequence state survives failover and restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from odradek.client import Producer
from odradek.client.errors import OdradekError, from_rpc_error
from odradek.records import BatchBuilder, iter_records
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from tests.brokers import BrokerProcess, ClusterProcesses

TOPIC = "ledger"


@pytest.fixture
def cluster3(tmp_path: Path) -> Iterator[ClusterProcesses]:
    procs = ClusterProcesses(tmp_path, count=3).start()
    try:
        yield procs
    finally:
        procs.stop()


def batch(pid: int, epoch: int, seq: int, values: list[bytes]) -> bytes:
    builder = BatchBuilder(producer_id=pid, producer_epoch=epoch, base_sequence=seq)
    for v in values:
        builder.append(int(time.time() * 1000), None, v)
    return builder.build()


def create_topic(address: str, partitions: int = 1, rf: int = 0) -> None:
    with grpc.insecure_channel(address) as channel:
        pb_grpc.AdminStub(channel).CreateTopic(pb.CreateTopicRequest(
            name=TOPIC, partitions=partitions, replication_factor=rf), timeout=30)


def init_producer(address: str, name: str = "") -> tuple[int, int]:
    with grpc.insecure_channel(address) as channel:
        reply = pb_grpc.BrokerStub(channel).InitProducerId(
            pb.InitProducerIdRequest(producer_name=name), timeout=30)
    return reply.producer_id, reply.producer_epoch


def resume_producer(address: str, name: str, pid: int, epoch: int) -> tuple[int, int]:
    with grpc.insecure_channel(address) as channel:
        reply = pb_grpc.BrokerStub(channel).InitProducerId(pb.InitProducerIdRequest(
            producer_name=name, resume=True, producer_id=pid, producer_epoch=epoch), timeout=30)
    return reply.producer_id, reply.producer_epoch


def produce(address: str, records: bytes, partition: int = 0) -> pb.ProduceResponse:
    with grpc.insecure_channel(address) as channel:
        reply: pb.ProduceResponse = pb_grpc.BrokerStub(channel).Produce(pb.ProduceRequest(
            topic=TOPIC, partition=partition, records=records), timeout=30)
    return reply


def refused(address: str, records: bytes) -> OdradekError:
    with pytest.raises(grpc.RpcError) as info:
        produce(address, records)
    return from_rpc_error(info.value)


def leader_address(cluster: ClusterProcesses, partition: int, exclude: int | None = None,
                   timeout: float = 30.0) -> str:
    """The address of the partition's leader as a live broker reports it."""
    deadline = time.monotonic() + timeout
    live = [b for i, b in enumerate(cluster.brokers) if i != exclude]
    while time.monotonic() < deadline:
        for b in live:
            try:
                with grpc.insecure_channel(b.address) as channel:
                    meta = pb_grpc.BrokerStub(channel).Metadata(
                        pb.MetadataRequest(topics=[TOPIC]), timeout=2)
            except grpc.RpcError:
                continue
            leader = meta.topics[0].partitions[partition].leader
            if leader >= 0 and leader != exclude:
                return cluster.brokers[leader].address
        time.sleep(0.1)
    raise TimeoutError(f"no leader for {TOPIC}-{partition} within {timeout}s")


def read_all(address: str, partition: int = 0, want: int = 0,
             timeout: float = 30.0) -> list[tuple[int, bytes]]:
    """Every (offset, value) up to the high watermark, once it holds at least `want`
    records (a new leader commits the previous term's entries with its first one)."""
    deadline = time.monotonic() + timeout
    while True:
        out: list[tuple[int, bytes]] = []
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.BrokerStub(channel)
            offset = 0
            while True:
                reply = stub.Fetch(pb.FetchRequest(topic=TOPIC, partition=partition,
                                                   offset=offset, max_bytes=1 << 20), timeout=10)
                out += [(r.offset, r.value or b"") for r in iter_records(reply.records)
                        if r.offset >= offset]
                if reply.next_offset >= reply.high_watermark or not reply.records:
                    break
                offset = reply.next_offset
        if len(out) >= want or time.monotonic() > deadline:
            return out
        time.sleep(0.1)


def broker_index(cluster: ClusterProcesses, address: str) -> int:
    return next(i for i, b in enumerate(cluster.brokers) if b.address == address)


@pytest.mark.timeout(240)
async def test_retries_across_leader_kills_store_every_record_once(
        cluster3: ClusterProcesses) -> None:
    """Two leaders are killed with -9 while batches are in flight (the first comes back in
    between); a batch stored before its answer was lost is retried, and must be found."""
    create_topic(cluster3.brokers[0].address, partitions=2, rf=3)
    sent: dict[int, list[bytes]] = {0: [], 1: []}
    futures = []
    dead: int | None = None

    def kill_leader(partition: int) -> int:
        victim = broker_index(cluster3, leader_address(cluster3, partition, exclude=dead))
        cluster3.brokers[victim].kill9()
        return victim

    async with Producer(cluster3.bootstrap, linger_ms=2, batch_size=4096, retry_backoff_ms=50,
                        request_timeout_ms=5000, delivery_timeout_ms=120_000) as producer:
        for i in range(9000):
            partition = i % 2
            value = b"p%d-%06d" % (partition, i)
            sent[partition].append(value)
            futures.append(await producer.send(TOPIC, value, partition=partition))
            if i == 2000:
                dead = await asyncio.to_thread(kill_leader, 0)
            elif i == 4000 and dead is not None:
                await asyncio.to_thread(cluster3.brokers[dead].start)
                dead = None
            elif i == 6000:
                dead = await asyncio.to_thread(kill_leader, 1)
            if i % 100 == 0:
                await asyncio.sleep(0.005)  # spread the sends over the failovers
        results = await asyncio.gather(*futures, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} sends failed, first: {errors[0]!r}"
    for partition in (0, 1):
        address = leader_address(cluster3, partition, exclude=dead)
        stored = read_all(address, partition, want=len(sent[partition]))
        assert [v for _, v in stored] == sent[partition], f"partition {partition} differs"
        acked = {r.offset: r for r in results if r.partition == partition}  # type: ignore[union-attr]
        assert sorted(acked) == [o for o, _ in stored], "acknowledged offsets differ"


@pytest.mark.timeout(120)
def test_resent_batch_after_failover_is_a_duplicate(cluster3: ClusterProcesses) -> None:
    create_topic(cluster3.brokers[0].address, rf=3)
    pid, epoch = init_producer(cluster3.brokers[1].address)
    first_leader = leader_address(cluster3, 0)
    records = [batch(pid, epoch, 0, [b"a", b"b"]), batch(pid, epoch, 2, [b"c"])]
    replies = [produce(first_leader, r) for r in records]
    victim = broker_index(cluster3, first_leader)
    cluster3.brokers[victim].kill9()
    new_leader = leader_address(cluster3, 0, exclude=victim)
    # The followers kept the sequence state as the batches reached their logs.
    for r, reply in zip(records, replies, strict=True):
        again = produce(new_leader, r)
        assert (again.base_offset, again.last_offset) == (reply.base_offset, reply.last_offset)
    gap = refused(new_leader, batch(pid, epoch, 5, [b"x"]))
    assert gap.reason == "OUT_OF_ORDER_SEQUENCE" and gap.metadata["expected_sequence"] == "3"
    produce(new_leader, batch(pid, epoch, 3, [b"d"]))
    assert [v for _, v in read_all(new_leader, want=4)] == [b"a", b"b", b"c", b"d"]


@pytest.mark.timeout(120)
def test_duplicates_gaps_and_fencing_get_clear_answers(broker: BrokerProcess) -> None:
    address = broker.address
    create_topic(address)
    pid, epoch = init_producer(address)
    other, _ = init_producer(address)
    assert other != pid
    first = batch(pid, epoch, 0, [b"one", b"two"])
    reply = produce(address, first)
    again = produce(address, first)
    assert (again.base_offset, again.last_offset) == (reply.base_offset, reply.last_offset)
    assert list(again.batch_base_offsets) == [reply.base_offset]

    gap = refused(address, batch(pid, epoch, 7, [b"x"]))
    assert gap.reason == "OUT_OF_ORDER_SEQUENCE" and gap.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "expects 2" in gap.message

    # A retried request whose first batch was stored: the rest goes in after it.
    mixed = produce(address, first + batch(pid, epoch, 2, [b"three"]))
    assert mixed.batch_base_offsets[0] == reply.base_offset
    assert mixed.batch_base_offsets[1] > reply.last_offset

    named, e0 = init_producer(address, "writer")
    produce(address, batch(named, e0, 0, [b"zombie-1"]))
    assert init_producer(address, "writer") == (named, e0 + 1)
    # Fenced at once, before the new instance wrote here (the metadata knows its epoch)...
    fenced = refused(address, batch(named, e0, 1, [b"zombie-2"]))
    assert fenced.reason == "PRODUCER_FENCED" and "fenced" in fenced.message
    produce(address, batch(named, e0 + 1, 0, [b"successor"]))
    # ...and after it did (the partition's own state knows it too).
    assert refused(address, batch(named, e0, 1, [b"zombie-3"])).reason == "PRODUCER_FENCED"
    # The zombie's batch timed out, so it initialises again, naming the identity it had:
    # it must not take the name back (it would fence its successor: seen under faults by
    # tests/chaos, seed 201). Its successor resuming its own identity goes on, and a
    # retry of that resume (its answer lost) gets the same epoch again.
    with pytest.raises(grpc.RpcError) as info:
        resume_producer(address, "writer", named, e0)
    assert from_rpc_error(info.value).reason == "PRODUCER_FENCED"
    assert resume_producer(address, "writer", named, e0 + 1) == (named, e0 + 2)
    assert resume_producer(address, "writer", named, e0 + 1) == (named, e0 + 2)
    produce(address, batch(named, e0 + 2, 0, [b"successor-again"]))

    with pytest.raises(grpc.RpcError) as info:
        init_producer(address, "w" * 300)
    assert from_rpc_error(info.value).reason == "INVALID_REQUEST"

    bad = refused(address, batch(pid, -1, 3, [b"x"]))
    assert bad.reason == "INVALID_RECORD"
    # Producers without an id are not checked: the same batch twice is stored twice.
    plain = batch(-1, -1, -1, [b"plain"])
    produce(address, plain)
    produce(address, plain)
    values = [v for _, v in read_all(address)]
    assert values == [b"one", b"two", b"three", b"zombie-1", b"successor", b"successor-again",
                      b"plain", b"plain"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["kill9", "sigterm"])
def test_sequence_state_survives_a_restart(broker: BrokerProcess, how: str) -> None:
    address = broker.address
    create_topic(address)
    pid, epoch = init_producer(address)
    batches = [batch(pid, epoch, i, [b"v%d" % i]) for i in range(8)]
    replies = [produce(address, b) for b in batches]
    if how == "kill9":
        broker.kill9()  # no snapshot at shutdown: the state is rebuilt by a scan
    else:
        broker.stop()
    broker.start()
    for i in (7, 0):  # consecutive batches are remembered as one run: all of them
        again = produce(address, batches[i])
        assert again.base_offset == replies[i].base_offset
    gap = refused(address, batch(pid, epoch, 10, [b"v10"]))
    assert gap.reason == "OUT_OF_ORDER_SEQUENCE" and gap.metadata["expected_sequence"] == "8"
    produce(address, batch(pid, epoch, 8, [b"v8"]))
    # A restart keeps the producer id counter too: a new id is a new one.
    assert init_producer(address)[0] != pid
    assert [v for _, v in read_all(address)] == [b"v%d" % i for i in range(9)]


@pytest.mark.timeout(60)
def test_idle_producers_expire(tmp_path: Path) -> None:
    proc = BrokerProcess(tmp_path / "data", extra_args=["--producer-id-expiration-ms", "1000"])
    proc.start()
    try:
        address = proc.address
        create_topic(address)
        pid, epoch = init_producer(address)
        first = batch(pid, epoch, 0, [b"a"])
        produce(address, first)
        assert refused(address, batch(pid, epoch, 5, [b"x"])).reason == "OUT_OF_ORDER_SEQUENCE"
        time.sleep(1.5)
        produce(address, batch(-1, -1, -1, [b"plain"]))  # any append runs the expiry
        # Forgotten: an unknown producer is taken at any sequence (as in Kafka).
        produce(address, batch(pid, epoch, 5, [b"b"]))
        assert [v for _, v in read_all(address)] == [b"a", b"plain", b"b"]
    finally:
        proc.stop()
