"""Error decoding from rich gRPC statuses, and bootstrap parsing."""

from __future__ import annotations

import grpc
import pytest

from odradek.client import (
    NotLeaderError,
    OdradekError,
    TopicAlreadyExistsError,
    UnavailableError,
    from_rpc_error,
    parse_bootstrap,
)
from odradek.client.connection import Cluster
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from tests.unit.fake_odradek import FakeCluster, ThreadedFake


async def test_aio_error_decodes_error_info() -> None:
    fake = await FakeCluster(2).start()
    try:
        fake.create_topic("t", 1, leader=1)
        fake.leader_hints = True
        async with grpc.aio.insecure_channel(f"127.0.0.1:{fake.ports[0]}") as ch:
            stub = pb_grpc.BrokerStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Produce(pb.ProduceRequest(topic="t", partition=0, records=b""))
            err = from_rpc_error(info.value)
            assert isinstance(err, NotLeaderError)
            assert err.reason == "NOT_LEADER" and err.retriable and err.invalidates_metadata
            assert err.code == grpc.StatusCode.FAILED_PRECONDITION
            assert err.leader_hint == f"127.0.0.1:{fake.ports[1]}"
            assert "does not lead" in err.message
            assert str(err).endswith("(NOT_LEADER)")

            admin = pb_grpc.AdminStub(ch)
            await admin.CreateTopic(pb.CreateTopicRequest(name="x", partitions=1))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await admin.CreateTopic(pb.CreateTopicRequest(name="x", partitions=1))
            err = from_rpc_error(info.value)
            assert type(err) is TopicAlreadyExistsError and not err.retriable
            assert err.metadata == {"topic": "x"}
    finally:
        await fake.stop()


async def test_plain_status_and_unreachable_broker() -> None:
    fake = await FakeCluster().start()
    try:
        fake.inject("ListTopics", None, grpc.StatusCode.PERMISSION_DENIED)
        async with grpc.aio.insecure_channel(fake.bootstrap) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await pb_grpc.AdminStub(ch).ListTopics(pb.ListTopicsRequest())
        err = from_rpc_error(info.value)
        assert err.reason == "PERMISSION_DENIED" and not err.retriable
    finally:
        await fake.stop()
    cluster = Cluster("127.0.0.1:1", request_timeout_ms=2000)
    try:
        with pytest.raises(UnavailableError) as uinfo:
            await cluster.refresh()
        assert uinfo.value.retriable and uinfo.value.reason == "UNAVAILABLE"
    finally:
        await cluster.close()


def test_sync_grpc_errors_decode_too() -> None:
    fake = ThreadedFake()
    try:
        with grpc.insecure_channel(fake.cluster.bootstrap) as ch, pytest.raises(
            grpc.RpcError,
        ) as info:
            pb_grpc.AdminStub(ch).DescribeTopic(pb.DescribeTopicRequest(name="nope"))
        err = from_rpc_error(info.value)
        assert err.reason == "UNKNOWN_TOPIC_OR_PARTITION" and isinstance(err, OdradekError)
    finally:
        fake.stop()


def test_parse_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_bootstrap("a:1, b:2,a:1") == ["a:1", "b:2"]
    assert parse_bootstrap(["h"]) == ["h:9092"]
    assert parse_bootstrap("[::1]:9000") == ["[::1]:9000"]
    monkeypatch.setenv("ODRADEK_BOOTSTRAP", "x:5")
    assert parse_bootstrap(None) == ["x:5"]
    monkeypatch.delenv("ODRADEK_BOOTSTRAP")
    assert parse_bootstrap(None) == ["127.0.0.1:9092"]
    with pytest.raises(ValueError):
        parse_bootstrap("h:port")
    with pytest.raises(ValueError):
        parse_bootstrap(" , ")
