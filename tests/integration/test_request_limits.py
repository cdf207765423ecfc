"""Per-method request limits through the real gRPC port (issue 11, item 1): a request over
its method's limit gets RESOURCE_EXHAUSTED naming the limit, before it is parsed, served
or logged; Produce takes megabytes; gRPC refuses what no method takes; the broker stays
up. Memory under a flood of such calls: bench/request_flood.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from odradek.broker.grpc.limits import AUTH, LISTS, PRODUCE, SERVER_RECEIVE_LIMIT, SMALL
from odradek.records import encode_batch
from odradek.v1 import groups_pb2 as gpb
from odradek.v1 import groups_pb2_grpc as gpb_grpc
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from odradek.v1 import security_pb2 as spb
from odradek.v1 import security_pb2_grpc as spb_grpc
from tests.brokers import BrokerProcess
from tests.integration.test_bad_input import reason_of

TOPIC = "big"


@pytest.fixture
def channel(broker: BrokerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(broker.address, options=[
            ("grpc.max_send_message_length", -1)]) as ch:
        pb_grpc.AdminStub(ch).CreateTopic(pb.CreateTopicRequest(  # type: ignore[no-untyped-call]
            name=TOPIC, partitions=1, configs={"max.message.bytes": str(8 << 20)}), timeout=10)
        yield ch


def refused(call: grpc.RpcError, method: str, limit: int) -> None:
    assert call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, call.details()
    assert reason_of(call) == "REQUEST_TOO_LARGE"
    assert f"a {method} request is at most {limit} bytes" in (call.details() or "")


def test_each_method_refuses_requests_over_its_limit(broker: BrokerProcess,
                                                     channel: grpc.Channel) -> None:
    security = spb_grpc.SecurityStub(channel)  # type: ignore[no-untyped-call]
    data, admin = broker.stubs(channel)
    marker = "q" * (AUTH + 1)
    with pytest.raises(grpc.RpcError) as start:
        security.ScramStart(spb.ScramStartRequest(
            mechanism="SCRAM-SHA-512", client_first_message="n,,n=" + marker), timeout=30)
    refused(start.value, "ScramStart", AUTH)
    with pytest.raises(grpc.RpcError) as describe:
        admin.DescribeTopic(pb.DescribeTopicRequest(name="d" * (SMALL + 1)), timeout=30)
    refused(describe.value, "DescribeTopic", SMALL)
    with pytest.raises(grpc.RpcError) as produce:
        data.Produce(pb.ProduceRequest(topic=TOPIC, records=b"x" * (PRODUCE + 1)), timeout=60)
    refused(produce.value, "Produce", PRODUCE)
    # Over what any method takes: gRPC refuses it from the length prefix alone.
    with pytest.raises(grpc.RpcError) as whole:
        admin.DescribeTopic(pb.DescribeTopicRequest(name="e" * SERVER_RECEIVE_LIMIT),
                            timeout=60)
    assert whole.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(SERVER_RECEIVE_LIMIT) in (whole.value.details() or "")

    # Produce takes megabytes, small calls go on, and nothing of the refused ones is logged.
    big = encode_batch([(1, b"k", b"v" * (4 << 20))])
    answer = data.Produce(pb.ProduceRequest(topic=TOPIC, records=big), timeout=60)
    assert answer.last_offset >= 0
    assert admin.DescribeTopic(pb.DescribeTopicRequest(name=TOPIC), timeout=10).name == TOPIC
    assert broker.serving()
    assert "qqqqqqqqqqqqqqqqqqqq" not in broker.log()
    assert "refused a ScramStart request of" in broker.log()


async def test_a_stream_message_over_its_limit_ends_the_stream(broker: BrokerProcess) -> None:
    async with grpc.aio.insecure_channel(broker.address, options=[
            ("grpc.max_send_message_length", -1)]) as ch:
        groups = gpb_grpc.GroupsStub(ch)  # type: ignore[no-untyped-call]

        async def join() -> AsyncIterator[gpb.MemberRequest]:
            yield gpb.MemberRequest(join=gpb.JoinGroup(
                group_id="g", topics=["t" * (2 << 20)]))

        with pytest.raises(grpc.aio.AioRpcError) as stream:
            async for _ in groups.Membership(join(), timeout=30):
                pass  # refused before any answer
        refused(stream.value, "Membership", LISTS)
    assert broker.serving()
