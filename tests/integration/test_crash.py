"""Crash safety with real processes: kill -9 under load, and damaged segments on disk."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc

from odradek.records import encode_batch, iter_records
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from tests.brokers import BrokerProcess

TOPIC = "ledger"


def read_all(address: str, topic: str, partition: int = 0) -> list[tuple[int, bytes]]:
    """Every (offset, value) of a partition, fetched from offset 0 to the high watermark."""
    out: list[tuple[int, bytes]] = []
    with grpc.insecure_channel(address) as channel:
        data = pb_grpc.BrokerStub(channel)
        offset = 0
        while True:
            reply = data.Fetch(pb.FetchRequest(topic=topic, partition=partition, offset=offset,
                                               max_bytes=1 << 20), timeout=10)
            for record in iter_records(reply.records):
                if record.offset >= offset:
                    out.append((record.offset, record.value or b""))
            if reply.next_offset >= reply.high_watermark or not reply.records:
                return out
            offset = reply.next_offset


def produce_until_killed(address: str, acked: list[tuple[int, bytes]],
                         stop: threading.Event) -> None:
    """Sends 10-record batches one after another; remembers what was acknowledged."""
    n = 0
    with grpc.insecure_channel(address) as channel:
        data = pb_grpc.BrokerStub(channel)
        while not stop.is_set():
            values = [b"record-%08d" % (n + i) for i in range(10)]
            batch = encode_batch([(int(time.time() * 1000), None, v) for v in values])
            try:
                reply = data.Produce(pb.ProduceRequest(topic=TOPIC, partition=0, records=batch),
                                     timeout=5)
            except grpc.RpcError:
                return
            acked.extend((reply.base_offset + i, v) for i, v in enumerate(values))
            n += 10


def test_kill9_during_produce_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data", extra_args=["--config", "segment.bytes=65536"])
    broker.start()
    try:
        with grpc.insecure_channel(broker.address) as channel:
            pb_grpc.AdminStub(channel).CreateTopic(
                pb.CreateTopicRequest(name=TOPIC, partitions=1), timeout=10)
        acked: list[tuple[int, bytes]] = []
        stop = threading.Event()
        producer = threading.Thread(target=produce_until_killed,
                                    args=(broker.address, acked, stop))
        producer.start()
        deadline = time.monotonic() + 30
        while len(acked) < 3000 and time.monotonic() < deadline:
            time.sleep(0.05)
        broker.kill9()
        stop.set()
        producer.join(timeout=30)
        assert len(acked) >= 3000, "the producer made too little progress before the kill"

        broker.start()
        stored = read_all(broker.address, TOPIC)
        stored_by_offset = dict(stored)
        for offset, value in acked:
            assert stored_by_offset.get(offset) == value, f"acknowledged offset {offset} lost"
        offsets = [o for o, _ in stored]
        assert offsets == sorted(set(offsets)), "offsets out of order or duplicated"
        values = [v for _, v in stored]
        assert values == [b"record-%08d" % i for i in range(len(values))]
    finally:
        broker.stop()


def _segments(partition_dir: Path) -> list[Path]:
    return sorted(partition_dir.glob("*.log"))


def test_damaged_segment_is_truncated_and_the_rest_served(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data")
    broker.start()
    try:
        with grpc.insecure_channel(broker.address) as channel:
            data, admin = pb_grpc.BrokerStub(channel), pb_grpc.AdminStub(channel)
            admin.CreateTopic(pb.CreateTopicRequest(name="cut", partitions=1), timeout=10)
            admin.CreateTopic(pb.CreateTopicRequest(name="flip", partitions=1), timeout=10)
            for topic in ("cut", "flip"):
                for b in range(10):
                    batch = encode_batch([(1000, None, b"%s-%d-%d" % (topic.encode(), b, i))
                                          for i in range(5)])
                    data.Produce(pb.ProduceRequest(topic=topic, partition=0, records=batch),
                                 timeout=10)
        broker.kill9()

        cut_log = _segments(broker.data_dir / "cut-0")[-1]
        raw = cut_log.read_bytes()
        cut_log.write_bytes(raw[: len(raw) - 20])  # the last batch loses its tail
        flip_log = _segments(broker.data_dir / "flip-0")[-1]
        raw = bytearray(flip_log.read_bytes())
        batch_size = len(raw) // 10
        raw[7 * batch_size + 70] ^= 0x55  # a byte inside the 8th batch's records
        flip_log.write_bytes(bytes(raw))

        broker.start()
        cut = read_all(broker.address, "cut")
        assert [v for _, v in cut] == [b"cut-%d-%d" % (b, i) for b in range(9) for i in range(5)]
        flip = read_all(broker.address, "flip")
        assert [v for _, v in flip] == [b"flip-%d-%d" % (b, i) for b in range(7) for i in range(5)]
        log = broker.log()
        assert "cut-0" in log and "flip-0" in log
        assert "truncat" in log.lower()

        with grpc.insecure_channel(broker.address) as channel:
            data = pb_grpc.BrokerStub(channel)
            reply = data.Produce(pb.ProduceRequest(topic="flip", partition=0,
                                                   records=encode_batch([(1, None, b"after")])),
                                 timeout=10)
            assert reply.base_offset > flip[-1][0]
        assert read_all(broker.address, "flip")[-1] == (reply.base_offset, b"after")
    finally:
        broker.stop()
