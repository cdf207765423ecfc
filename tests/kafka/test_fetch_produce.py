"""Fetch and Produce semantics over raw Kafka requests (built with kio): max wait and min
bytes for the whole request, max bytes across partitions (the first batch whole), acks=0
answered with nothing while the next request is answered, and ListOffsets."""

from __future__ import annotations

import asyncio
import io
import socket
import struct
import time

from kio.index import load_request_schema
from kio.serial import entity_reader, entity_writer

from odradek.broker.kafka import codec
from odradek.client import Admin, Producer
from odradek.records import encode_batch
from tests.kafka.conftest import KafkaBroker


class Wire:
    def __init__(self, broker: KafkaBroker) -> None:
        self.sock = socket.create_connection(("127.0.0.1", broker.kafka_port), timeout=15)
        self.next_id = 0

    def send(self, api_key: int, version: int, body: object) -> int:
        cls = load_request_schema(api_key, version)
        self.next_id += 1
        head = struct.pack(">hhih", api_key, version, self.next_id, 4) + b"test"
        if cls.__flexible__:
            head += b"\0"
        out = io.BytesIO()
        entity_writer(cls)(out, body)
        payload = head + out.getvalue()
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        return self.next_id

    def receive(self, api_key: int, version: int) -> tuple[int, object]:
        (length,) = struct.unpack(">i", self._read(4))
        frame = self._read(length)
        (correlation_id,) = struct.unpack_from(">i", frame)
        cls = codec.response_schema(api_key, version)
        start = 5 if cls.__flexible__ and api_key != codec.API_VERSIONS else 4
        body, _ = entity_reader(cls)(frame, start)
        return correlation_id, body

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "the broker closed the connection"
            data += chunk
        return data


def fetch_body(partitions: list[tuple[int, int]], max_wait_ms: int, min_bytes: int,
               max_bytes: int) -> object:
    module = codec.load_payload_module(1, 12, codec.EntityType.request)
    return codec.make(module.FetchRequest, replica_id=-1, max_wait=max_wait_ms,
                      min_bytes=min_bytes, max_bytes=max_bytes, isolation_level=0,
                      session_id=0, session_epoch=-1, topics=(codec.nested(
                          module, "FetchTopic", topic="t", partitions=tuple(
                              codec.nested(module, "FetchPartition", partition=p,
                                           fetch_offset=offset, partition_max_bytes=1 << 20)
                              for p, offset in partitions)),),
                      forgotten_topics_data=(), rack_id="")


async def test_fetch_waits_for_min_bytes_and_keeps_to_max_bytes(
        kafka_broker: KafkaBroker) -> None:
    async with Admin(kafka_broker.address) as admin:
        await admin.create_topic("t", partitions=2)
    wire = Wire(kafka_broker)
    started = time.monotonic()
    wire.send(1, 12, fetch_body([(0, 1), (1, 1)], 700, 1, 1 << 20))
    _, empty = wire.receive(1, 12)
    waited = time.monotonic() - started
    assert 0.6 <= waited < 5, waited  # nothing came: answered at max wait
    assert all(not p.records for t in empty.responses for p in t.partitions)  # type: ignore[attr-defined]

    async with Producer(kafka_broker.address, linger_ms=0) as producer:
        for partition in (0, 1):
            await (await producer.send("t", b"v" * 5000, partition=partition))
    started = time.monotonic()
    wire.send(1, 12, fetch_body([(0, 0), (1, 0)], 5000, 1, 1 << 20))
    _, both = wire.receive(1, 12)
    assert time.monotonic() - started < 2  # min bytes were there: no wait
    sizes = [len(p.records or b"") for t in both.responses for p in t.partitions]  # type: ignore[attr-defined]
    assert all(size > 5000 for size in sizes)
    # A budget below one batch: the first partition's batch comes whole, the next none.
    wire.send(1, 12, fetch_body([(0, 1), (1, 1)], 0, 1, 100))
    _, capped = wire.receive(1, 12)
    sizes = [len(p.records or b"") for t in capped.responses for p in t.partitions]  # type: ignore[attr-defined]
    assert sizes[0] > 5000 and sizes[1] == 0


async def test_acks_zero_gets_no_answer_and_list_offsets(kafka_broker: KafkaBroker) -> None:
    async with Admin(kafka_broker.address) as admin:
        await admin.create_topic("t", partitions=1)
    async with Producer(kafka_broker.address, linger_ms=0) as producer:
        await (await producer.send("t", b"first"))
    module = codec.load_payload_module(0, 9, codec.EntityType.request)
    body = codec.make(module.ProduceRequest, acks=0, timeout=5000, topic_data=(
        codec.nested(module, "TopicProduceData", name="t", partition_data=(
            codec.nested(module, "PartitionProduceData", index=0,
                         records=encode_batch([(int(time.time() * 1000), b"k", b"v")])),)),))
    wire = Wire(kafka_broker)
    wire.send(0, 9, body)
    versions = load_request_schema(18, 3)(client_software_name="t",
                                          client_software_version="1")
    asked = wire.send(18, 3, versions)
    correlation_id, _ = wire.receive(18, 3)
    assert correlation_id == asked  # the produce got no answer of its own
    offsets = codec.load_payload_module(2, 7, codec.EntityType.request)
    asks = tuple(codec.nested(offsets, "ListOffsetsPartition", partition_index=0, timestamp=ts)
                 for ts in (-2, -1))
    request = codec.make(offsets.ListOffsetsRequest, replica_id=-1, isolation_level=0,
                         topics=(codec.nested(offsets, "ListOffsetsTopic", name="t",
                                              partitions=asks),))
    found: list[int] = []
    for _ in range(50):  # the acks=0 record lands shortly after
        wire.send(2, 7, request)
        _, answer = wire.receive(2, 7)
        found = [p.offset for t in answer.topics for p in t.partitions]  # type: ignore[attr-defined]
        if found[1] == 3:
            break
        time.sleep(0.05)
    assert found == [0, 3]  # offset 0: the first leader's no-op; then two records


async def test_offset_for_leader_epoch_is_the_raft_term(kafka_broker: KafkaBroker) -> None:
    async with Admin(kafka_broker.address) as admin:
        await admin.create_topic("t", partitions=1)
        for _ in range(50):
            view = (await admin.describe_topic("t")).partitions[0]
            if view.info.leader_epoch > 0:
                break
            await asyncio.sleep(0.1)
    async with Producer(kafka_broker.address, linger_ms=0) as producer:
        for i in range(3):
            await (await producer.send("t", b"v%d" % i))
    epoch = view.info.leader_epoch
    module = codec.load_payload_module(23, 4, codec.EntityType.request)

    def ask(leader_epoch: int) -> tuple[int, int, int]:
        wire = Wire(kafka_broker)
        wire.send(23, 4, codec.make(module.OffsetForLeaderEpochRequest, replica_id=-1, topics=(
            codec.nested(module, "OffsetForLeaderTopic", topic="t", partitions=(
                codec.nested(module, "OffsetForLeaderPartition", partition=0,
                             current_leader_epoch=-1, leader_epoch=leader_epoch),)),)))
        _, answer = wire.receive(23, 4)
        p = answer.topics[0].partitions[0]  # type: ignore[attr-defined]
        return int(p.error_code), int(p.leader_epoch), int(p.end_offset)

    assert ask(epoch) == (0, epoch, 4)  # the current epoch ends at the log end
    assert ask(epoch - 1) == (0, epoch - 1, 0)  # an epoch before the first ends where it began
    assert ask(epoch + 5) == (0, -1, -1)  # an epoch not seen yet is unknown
