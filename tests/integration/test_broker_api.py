"""The broker's gRPC API end to end through a real process."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from odradek.records import iter_records
from odradek.records.builder import BatchBuilder
from odradek.records.compression import Compression
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from tests.brokers import BrokerProcess

Stubs = tuple[pb_grpc.BrokerStub, pb_grpc.AdminStub]


@pytest.fixture
def stubs(broker: BrokerProcess) -> Iterator[Stubs]:
    with grpc.insecure_channel(broker.address) as channel:
        yield pb_grpc.BrokerStub(channel), pb_grpc.AdminStub(channel)


def produce(data: pb_grpc.BrokerStub, topic: str, values: list[bytes], partition: int = 0,
            ts: int = 1000, compression: Compression = Compression.NONE) -> pb.ProduceResponse:
    builder = BatchBuilder(compression)
    for i, v in enumerate(values):
        builder.append(ts + i, None, v)
    return data.Produce(pb.ProduceRequest(topic=topic, partition=partition,
                                          records=builder.build()), timeout=10)


def test_produce_fetch_every_compression(stubs: Stubs) -> None:
    data, admin = stubs
    admin.CreateTopic(pb.CreateTopicRequest(name="t", partitions=1), timeout=10)
    expected = []
    bases = []
    for codec in Compression:
        values = [b"%s-%d" % (codec.name.encode(), i) for i in range(20)]
        reply = produce(data, "t", values, compression=codec)
        assert reply.last_offset - reply.base_offset == 19
        bases.append(reply.base_offset)
        expected += values
    # Offsets may have gaps (Raft's own control batches take offsets; consumers skip them).
    reply = data.Fetch(pb.FetchRequest(topic="t", partition=0, offset=0), timeout=10)
    assert [r.value for r in iter_records(reply.records)] == expected
    end = bases[-1] + 20
    assert reply.high_watermark == end and reply.next_offset == end
    inside = bases[2] + 5
    mid = data.Fetch(pb.FetchRequest(topic="t", partition=0, offset=inside, max_bytes=1),
                     timeout=10)
    records = list(iter_records(mid.records))
    assert records[0].offset == bases[2] <= inside < mid.next_offset
    assert mid.next_offset == bases[2] + 20  # one whole batch, even past max_bytes


def test_fetch_long_polls_until_data_arrives(stubs: Stubs) -> None:
    data, admin = stubs
    admin.CreateTopic(pb.CreateTopicRequest(name="poll", partitions=1), timeout=10)
    empty = data.Fetch(pb.FetchRequest(topic="poll", partition=0, offset=0, max_wait_ms=200),
                       timeout=10)
    assert list(iter_records(empty.records)) == []  # at most Raft's control batch
    timer = threading.Timer(0.3, lambda: produce(data, "poll", [b"late"]))
    timer.start()
    started = time.monotonic()
    reply = data.Fetch(pb.FetchRequest(topic="poll", partition=0, offset=empty.next_offset,
                                       max_wait_ms=20_000, min_bytes=1), timeout=30)
    assert time.monotonic() - started < 15
    timer.join()
    assert [r.value for r in iter_records(reply.records)] == [b"late"]


def test_subscribe_streams_new_batches(stubs: Stubs) -> None:
    data, admin = stubs
    admin.CreateTopic(pb.CreateTopicRequest(name="live", partitions=1), timeout=10)
    start = produce(data, "live", [b"a", b"b"]).base_offset + 1
    stream = data.Subscribe(pb.SubscribeRequest(topic="live", partition=0, offset=start),
                            timeout=30)
    got: list[bytes] = []
    producer = threading.Timer(0.2, lambda: produce(data, "live", [b"c"]))
    producer.start()
    for reply in stream:
        got += [r.value or b"" for r in iter_records(reply.records) if r.offset >= start]
        if len(got) >= 2:
            break
    stream.cancel()
    producer.join()
    assert got == [b"b", b"c"]


def test_list_offsets(stubs: Stubs) -> None:
    data, admin = stubs
    admin.CreateTopic(pb.CreateTopicRequest(name="time", partitions=1), timeout=10)
    first = produce(data, "time", [b"x"] * 5, ts=1000).base_offset
    second = produce(data, "time", [b"y"] * 5, ts=5000).base_offset

    def lookup(spec: int, ts: int = 0) -> pb.ListOffsetsResponse:
        return data.ListOffsets(pb.ListOffsetsRequest(topic="time", partition=0, spec=spec,
                                                      timestamp_ms=ts), timeout=10)

    assert lookup(pb.OFFSET_SPEC_EARLIEST).offset == 0
    assert lookup(pb.OFFSET_SPEC_LATEST).offset == second + 5
    hit = lookup(pb.OFFSET_SPEC_TIMESTAMP, 1002)
    assert (hit.found, hit.offset, hit.timestamp_ms) == (True, first + 2, 1002)
    hit = lookup(pb.OFFSET_SPEC_TIMESTAMP, 4000)
    assert (hit.found, hit.offset, hit.timestamp_ms) == (True, second, 5000)
    miss = lookup(pb.OFFSET_SPEC_TIMESTAMP, 9999)
    assert (miss.found, miss.offset) == (False, second + 5)


def test_topic_admin_lifecycle(stubs: Stubs) -> None:
    data, admin = stubs
    created = admin.CreateTopic(pb.CreateTopicRequest(
        name="users", partitions=2, configs={"cleanup.policy": "compact"}), timeout=10).topic
    assert created.name == "users" and len(created.partitions) == 2
    configs = {c.name: c for c in created.configs}
    assert configs["cleanup.policy"].value == "compact" and not configs["cleanup.policy"].is_default
    assert configs["retention.ms"].is_default

    dry = admin.CreateTopic(pb.CreateTopicRequest(name="dry", partitions=1, validate_only=True),
                            timeout=10)
    assert not dry.HasField("topic")

    altered = admin.AlterTopicConfigs(pb.AlterTopicConfigsRequest(
        name="users", set={"retention.ms": "1000"}, delete=["cleanup.policy"]), timeout=10)
    configs = {c.name: c for c in altered.configs}
    assert configs["retention.ms"].value == "1000" and configs["cleanup.policy"].is_default

    grown = admin.CreatePartitions(pb.CreatePartitionsRequest(name="users", total_count=4),
                                   timeout=10)
    assert len(grown.partitions) == 4
    produce(data, "users", [b"p3"], partition=3)

    listed = admin.ListTopics(pb.ListTopicsRequest(), timeout=10)
    assert [(t.name, t.partitions) for t in listed.topics] == [("users", 4)]
    meta = data.Metadata(pb.MetadataRequest(topics=["users"]), timeout=10)
    assert [p.partition for p in meta.topics[0].partitions] == [0, 1, 2, 3]
    assert meta.brokers[0].port > 0

    admin.DeleteTopic(pb.DeleteTopicRequest(name="users"), timeout=10)
    assert not admin.ListTopics(pb.ListTopicsRequest(), timeout=10).topics
    admin.CreateTopic(pb.CreateTopicRequest(name="users", partitions=1), timeout=10)
    fresh = data.Fetch(pb.FetchRequest(topic="users", partition=0, offset=0), timeout=10)
    assert list(iter_records(fresh.records)) == []


def test_topics_and_data_survive_a_clean_restart(broker: BrokerProcess) -> None:
    with grpc.insecure_channel(broker.address) as channel:
        data, admin = pb_grpc.BrokerStub(channel), pb_grpc.AdminStub(channel)
        admin.CreateTopic(pb.CreateTopicRequest(name="keep", partitions=2,
                                                configs={"retention.ms": "-1"}), timeout=10)
        last = produce(data, "keep", [b"one", b"two"], partition=1).last_offset
    started = time.monotonic()
    assert broker.stop() == 0, broker.log()
    assert time.monotonic() - started < 10
    broker.start()
    with grpc.insecure_channel(broker.address) as channel:
        data, admin = pb_grpc.BrokerStub(channel), pb_grpc.AdminStub(channel)
        desc = admin.DescribeTopic(pb.DescribeTopicRequest(name="keep"), timeout=10)
        assert {c.name: c.value for c in desc.configs}["retention.ms"] == "-1"
        reply = data.Fetch(pb.FetchRequest(topic="keep", partition=1, offset=0), timeout=10)
        assert [r.value for r in iter_records(reply.records)] == [b"one", b"two"]
        assert produce(data, "keep", [b"three"], partition=1).base_offset > last


def test_log_append_time(stubs: Stubs) -> None:
    data, admin = stubs
    admin.CreateTopic(pb.CreateTopicRequest(
        name="stamped", partitions=1, configs={"message.timestamp.type": "LogAppendTime"}),
        timeout=10)
    before = int(time.time() * 1000)
    reply = produce(data, "stamped", [b"a", b"b"], ts=5)
    assert reply.log_append_time_ms >= before
    fetched = data.Fetch(pb.FetchRequest(topic="stamped", partition=0, offset=0), timeout=10)
    assert {r.timestamp for r in iter_records(fetched.records)} == {reply.log_append_time_ms}



def test_json_logs(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data", extra_args=["--log-format", "json"]).start()
    try:
        broker.stop()
        lines = [line for line in broker.log().splitlines() if line.strip()]
        entries = [json.loads(line) for line in lines]  # every line is one JSON object
        assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
        assert any("listening on" in e["message"] and e["level"] == "INFO" for e in entries)
        assert any(e["message"].endswith("stopped") for e in entries)
    finally:
        broker.stop()
