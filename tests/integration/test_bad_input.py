"""Bad input through the real gRPC port: a precise status, the broker stays up, and
nothing stored changes."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from odradek.records import encode_batch, iter_records
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from tests.brokers import BrokerProcess

TOPIC = "orders"


def reason_of(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, f"no rich status in {err}"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.domain == "odradek.io"
    return info.reason


@pytest.fixture
def stubs(broker: BrokerProcess) -> Iterator[tuple[pb_grpc.BrokerStub, pb_grpc.AdminStub]]:
    with grpc.insecure_channel(broker.address, options=[
            ("grpc.max_send_message_length", 256 * 1024 * 1024)]) as channel:
        data, admin = pb_grpc.BrokerStub(channel), pb_grpc.AdminStub(channel)
        admin.CreateTopic(pb.CreateTopicRequest(
            name=TOPIC, partitions=2, configs={"max.message.bytes": "2000"}), timeout=10)
        good = encode_batch([(1000 + i, b"k%d" % i, b"v%d" % i) for i in range(3)])
        data.Produce(pb.ProduceRequest(topic=TOPIC, partition=0, records=good), timeout=10)
        yield data, admin
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def snapshot(data: pb_grpc.BrokerStub) -> list[tuple[int, bytes]]:
    out = []
    for partition in (0, 1):
        reply = data.Fetch(pb.FetchRequest(topic=TOPIC, partition=partition, offset=0), timeout=10)
        out.append((reply.high_watermark, reply.records))
    return out


def good_batch() -> bytes:
    return encode_batch([(2000, b"a", b"b"), (2001, b"c", b"d")])


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def set_magic(data: bytes) -> bytes:
    return data[:16] + b"\x01" + data[17:]


BAD_BATCHES: dict[str, tuple[Callable[[], bytes], grpc.StatusCode, str]] = {
    "garbage": (lambda: b"\x00" * 7 + b"not a batch at all" * 5,
                grpc.StatusCode.INVALID_ARGUMENT, "CORRUPT_RECORD"),
    "empty": (lambda: b"", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RECORD"),
    "wrong_crc": (lambda: flip(good_batch(), 70), grpc.StatusCode.INVALID_ARGUMENT,
                  "CORRUPT_RECORD"),
    "wrong_magic": (lambda: set_magic(good_batch()), grpc.StatusCode.INVALID_ARGUMENT,
                    "UNSUPPORTED_MAGIC"),
    "truncated": (lambda: good_batch()[:-5], grpc.StatusCode.INVALID_ARGUMENT, "CORRUPT_RECORD"),
    "good_then_bad": (lambda: good_batch() + flip(good_batch(), 65),
                      grpc.StatusCode.INVALID_ARGUMENT, "CORRUPT_RECORD"),
    "length_lies": (lambda: good_batch()[:8] + struct.pack(">i", 10**6) + good_batch()[12:],
                    grpc.StatusCode.INVALID_ARGUMENT, "CORRUPT_RECORD"),
    "over_max_message_bytes": (lambda: encode_batch([(1, None, b"x" * 5000)]),
                               grpc.StatusCode.INVALID_ARGUMENT, "RECORD_TOO_LARGE"),
}


@pytest.mark.parametrize("case", sorted(BAD_BATCHES))
def test_bad_batch_is_refused_and_changes_nothing(stubs: tuple[pb_grpc.BrokerStub,
                                                  pb_grpc.AdminStub], case: str) -> None:
    data, _ = stubs
    make, code, reason = BAD_BATCHES[case]
    before = snapshot(data)
    with pytest.raises(grpc.RpcError) as info:
        data.Produce(pb.ProduceRequest(topic=TOPIC, partition=0, records=make()), timeout=10)
    assert info.value.code() == code, info.value.details()
    assert reason_of(info.value) == reason
    assert info.value.details()
    assert snapshot(data) == before


def test_request_over_grpc_limit(stubs: tuple[pb_grpc.BrokerStub, pb_grpc.AdminStub]) -> None:
    data, _ = stubs
    before = snapshot(data)
    with pytest.raises(grpc.RpcError) as info:
        data.Produce(pb.ProduceRequest(topic=TOPIC, partition=0, records=b"x" * (130 << 20)),
                     timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert snapshot(data) == before


@pytest.mark.parametrize("topic,partition", [("nope", 0), (TOPIC, 2), (TOPIC, 99)])
def test_unknown_topic_or_partition(stubs: tuple[pb_grpc.BrokerStub, pb_grpc.AdminStub],
                                    topic: str, partition: int) -> None:
    data, _ = stubs
    for call in (
        lambda: data.Produce(pb.ProduceRequest(topic=topic, partition=partition,
                                               records=good_batch()), timeout=10),
        lambda: data.Fetch(pb.FetchRequest(topic=topic, partition=partition), timeout=10),
        lambda: data.ListOffsets(pb.ListOffsetsRequest(
            topic=topic, partition=partition, spec=pb.OFFSET_SPEC_LATEST), timeout=10),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason_of(info.value) == "UNKNOWN_TOPIC_OR_PARTITION"
        assert repr(topic) in info.value.details()


def test_negative_partition(stubs: tuple[pb_grpc.BrokerStub, pb_grpc.AdminStub]) -> None:
    data, _ = stubs
    with pytest.raises(grpc.RpcError) as info:
        data.Fetch(pb.FetchRequest(topic=TOPIC, partition=-1), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(info.value) == "INVALID_REQUEST"


@pytest.mark.parametrize("offset", [-1, -100, 10**12])
def test_offset_out_of_range(stubs: tuple[pb_grpc.BrokerStub, pb_grpc.AdminStub],
                             offset: int) -> None:
    data, _ = stubs
    with pytest.raises(grpc.RpcError) as info:
        data.Fetch(pb.FetchRequest(topic=TOPIC, partition=0, offset=offset), timeout=10)
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert reason_of(info.value) == "OFFSET_OUT_OF_RANGE"
    hw = data.ListOffsets(pb.ListOffsetsRequest(topic=TOPIC, partition=0,
                                                spec=pb.OFFSET_SPEC_LATEST), timeout=10).offset
    assert f"valid offsets are 0 to {hw}" in info.value.details()
    with pytest.raises(grpc.RpcError) as past:
        data.Fetch(pb.FetchRequest(topic=TOPIC, partition=0, offset=hw + 1), timeout=10)
    assert reason_of(past.value) == "OFFSET_OUT_OF_RANGE"


@pytest.mark.parametrize("name", ["", "has space", "a/b", ".", "..", "x" * 250, "ünï"])
def test_invalid_topic_name(stubs: tuple[pb_grpc.BrokerStub, pb_grpc.AdminStub],
                            name: str) -> None:
    _, admin = stubs
    with pytest.raises(grpc.RpcError) as info:
        admin.CreateTopic(pb.CreateTopicRequest(name=name, partitions=1), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(info.value) == "INVALID_TOPIC"
    names = [t.name for t in admin.ListTopics(pb.ListTopicsRequest(), timeout=10).topics]
    assert names == [TOPIC]


@pytest.mark.parametrize("configs,needle", [
    ({"retention.ms": "soon"}, "retention.ms"),
    ({"cleanup.policy": "shred"}, "cleanup.policy"),
    ({"segment.bytes": "-5"}, "segment.bytes"),
    ({"no.such.config": "1"}, "no.such.config"),
])
def test_invalid_config(stubs: tuple[pb_grpc.BrokerStub, pb_grpc.AdminStub],
                        configs: dict[str, str], needle: str) -> None:
    _, admin = stubs
    before = admin.DescribeTopic(pb.DescribeTopicRequest(name=TOPIC), timeout=10)
    for call in (
        lambda: admin.CreateTopic(pb.CreateTopicRequest(name="fresh", partitions=1,
                                                        configs=configs), timeout=10),
        lambda: admin.AlterTopicConfigs(pb.AlterTopicConfigsRequest(name=TOPIC, set=configs),
                                        timeout=10),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason_of(info.value) == "INVALID_CONFIG"
        assert needle in info.value.details()
    after = admin.DescribeTopic(pb.DescribeTopicRequest(name=TOPIC), timeout=10)
    assert after.configs == before.configs
    names = [t.name for t in admin.ListTopics(pb.ListTopicsRequest(), timeout=10).topics]
    assert names == [TOPIC]


def test_invalid_partition_counts(stubs: tuple[pb_grpc.BrokerStub, pb_grpc.AdminStub]) -> None:
    _, admin = stubs
    for call, reason in (
        (lambda: admin.CreateTopic(pb.CreateTopicRequest(name="zero", partitions=0), timeout=10),
         "INVALID_PARTITIONS"),
        (lambda: admin.CreatePartitions(pb.CreatePartitionsRequest(name=TOPIC, total_count=1),
                                        timeout=10), "INVALID_PARTITIONS"),
        (lambda: admin.CreateTopic(pb.CreateTopicRequest(name=TOPIC, partitions=1), timeout=10),
         "TOPIC_ALREADY_EXISTS"),
        (lambda: admin.CreateTopic(pb.CreateTopicRequest(name="rf", partitions=1,
                                                         replication_factor=3), timeout=10),
         "INVALID_REPLICATION_FACTOR"),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert reason_of(info.value) == reason
    described = admin.DescribeTopic(pb.DescribeTopicRequest(name=TOPIC), timeout=10)
    assert len(described.partitions) == 2


def test_clients_that_disconnect_mid_call(broker: BrokerProcess) -> None:
    """Subscribe streams and long polls cut off by the client, and produce calls abandoned
    at a tiny deadline: the broker stays up and the log stays whole and in order."""
    with grpc.insecure_channel(broker.address) as channel:
        data, admin = pb_grpc.BrokerStub(channel), pb_grpc.AdminStub(channel)
        admin.CreateTopic(pb.CreateTopicRequest(name="cut", partitions=1), timeout=10)
        data.Produce(pb.ProduceRequest(topic="cut", partition=0,
                                       records=good_batch()), timeout=10)
        hw = data.ListOffsets(pb.ListOffsetsRequest(topic="cut", partition=0,
                                                    spec=pb.OFFSET_SPEC_LATEST), timeout=10).offset
        for _ in range(20):
            stream = data.Subscribe(pb.SubscribeRequest(topic="cut", partition=0, offset=0),
                                    timeout=10)
            next(iter(stream))
            stream.cancel()
            poll = data.Fetch.future(pb.FetchRequest(topic="cut", partition=0, offset=hw,
                                                     max_wait_ms=5000), timeout=10)
            time.sleep(0.01)
            poll.cancel()
        abandoned = 0
        for i in range(50):
            batch = encode_batch([(i, None, b"late-%d" % i)])
            try:
                data.Produce(pb.ProduceRequest(topic="cut", partition=0, records=batch),
                             timeout=0.0005)
            except grpc.RpcError:
                abandoned += 1
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
            health_pb2.HealthCheckResponse.SERVING
        reply = data.Fetch(pb.FetchRequest(topic="cut", partition=0, offset=0,
                                           max_bytes=1 << 20), timeout=10)
        values = [r.value for r in iter_records(reply.records)]
        assert values[:2] == [b"b", b"d"]
        late = [int(v.split(b"-")[1]) for v in values[2:] if v is not None]
        assert late == sorted(late) and len(set(late)) == len(late)


def test_internal_topics_refuse_client_writes_deletes_and_changes(
        broker: BrokerProcess, stubs: tuple[pb_grpc.BrokerStub, pb_grpc.AdminStub]) -> None:
    """Whatever the ACLs (here: authorization off, everything allowed), only the brokers
    write __consumer_offsets; a client's write, delete or change is INVALID_TOPIC and
    changes nothing."""
    from tests.brokers import commit_group_offsets

    data, admin = stubs
    commit_group_offsets([broker], "internal-check", TOPIC, {0: 0})  # makes the topic
    name = "__consumer_offsets"
    before = admin.DescribeTopic(pb.DescribeTopicRequest(name=name), timeout=10)
    attempts: list[Callable[[], object]] = [
        lambda: data.Produce(pb.ProduceRequest(topic=name, partition=0,
                                               records=good_batch()), timeout=10),
        lambda: admin.DeleteTopic(pb.DeleteTopicRequest(name=name), timeout=10),
        lambda: admin.AlterTopicConfigs(pb.AlterTopicConfigsRequest(
            name=name, set={"retention.ms": "1000"}), timeout=10),
        lambda: admin.CreatePartitions(pb.CreatePartitionsRequest(
            name=name, total_count=len(before.partitions) + 1), timeout=10),
    ]
    for attempt in attempts:
        with pytest.raises(grpc.RpcError) as info:
            attempt()
        assert reason_of(info.value) == "INVALID_TOPIC"
        assert "is internal" in (info.value.details() or "")
    after = admin.DescribeTopic(pb.DescribeTopicRequest(name=name), timeout=10)
    assert len(after.partitions) == len(before.partitions)
    assert list(after.configs) == list(before.configs)
    committed = data.ListOffsets(pb.ListOffsetsRequest(
        topic=name, partition=0, spec=pb.OFFSET_SPEC_LATEST), timeout=10)
    assert committed.found  # still there, still readable
