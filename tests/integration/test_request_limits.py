"""Per-method request limits through the real gRPC port (issue 11, item 1): a request over
its method's limit gets RESOURCE_EXHAUSTED naming the limit, before it is parsed, served
or logged; Produce takes megabytes; gRPC refuses what no method takes; the broker stays
up. Memory under a flood of such calls: bench/request_flood.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from odradek.broker.grpc.limits import AUTH, LISTS, PRODUCE, SERVER_RECEIVE_LIMIT, SMALL
from odradek.broker.replication.replica import MAX_APPEND_BYTES
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


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


OLD_SERVER_LIMIT = 64 * 1024 * 1024
CALLS = 12


async def test_requests_over_what_any_method_takes_are_not_buffered(
        broker: BrokerProcess) -> None:
    """Between the largest request (a Raft envelope of one Produce entry) and the 64 MiB
    the server took before, a call is refused by gRPC from its length prefix: many at once
    leave the broker's peak memory far below what buffering them would take."""
    assert SERVER_RECEIVE_LIMIT < 40 << 20 < OLD_SERVER_LIMIT
    assert broker.proc is not None
    pid = broker.proc.pid
    before = _peak_rss_mib(pid)
    name = "n" * (40 << 20)
    async with grpc.aio.insecure_channel(broker.address, options=[
            ("grpc.max_send_message_length", -1)]) as ch:
        admin = pb_grpc.AdminStub(ch)  # type: ignore[no-untyped-call]
        calls = [admin.DescribeTopic(pb.DescribeTopicRequest(name=name), timeout=120)
                 for _ in range(CALLS)]
        answers = await asyncio.gather(*calls, return_exceptions=True)
    for answer in answers:
        assert isinstance(answer, grpc.aio.AioRpcError), answer
        assert answer.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert str(SERVER_RECEIVE_LIMIT) in (answer.details() or "")
    # Buffered, they would be 12 x 40 MiB (and were, with the 64 MiB limit).
    grown = _peak_rss_mib(pid) - before
    assert grown < CALLS * 40 / 3, f"peak RSS grew by {grown:.0f} MiB"
    assert "refused a DescribeTopic request" not in broker.log()
    assert broker.serving()


def test_an_append_larger_than_one_raft_entry_is_refused(broker: BrokerProcess,
                                                         channel: grpc.Channel) -> None:
    """Within the Produce request limit, but more batches than one Raft message carries:
    refused with a clear status, not stored and left unreplicated."""
    data, _ = broker.stubs(channel)
    with pytest.raises(grpc.RpcError) as refused:
        data.Produce(pb.ProduceRequest(topic=TOPIC, records=b"x" * (MAX_APPEND_BYTES + 1)),
                     timeout=60)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    assert reason_of(refused.value) == "RECORD_TOO_LARGE"
    assert f"at most {MAX_APPEND_BYTES} bytes of batches per request" in (
        refused.value.details() or "")
    assert broker.serving()
