"""Log lines never carry unbounded client strings (issue 11, item 1): calls with long
names, ids and messages (each under its method's request limit) through the real port,
on a broker logging at debug level; no line of its log is long, none holds a long run of
what the client sent, and each call got a clear status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from odradek.v1 import groups_pb2 as gpb
from odradek.v1 import groups_pb2_grpc as gpb_grpc
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from odradek.v1 import security_pb2 as spb
from odradek.v1 import security_pb2_grpc as spb_grpc
from tests.brokers import BrokerProcess

LONG = 15_000  # characters: under every method's limit, far over what a log line shows
RUN = "z" * 300  # what no log line may hold


@pytest.fixture
def chatty(tmp_path: Path) -> AsyncIterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path / "b", extra_args=["--log-level", "debug"])
    try:
        yield proc.start()
    finally:
        proc.stop()


async def test_long_client_strings_stay_out_of_the_log(chatty: BrokerProcess) -> None:
    z = "z" * LONG
    async with grpc.aio.insecure_channel(chatty.address) as channel:
        broker = pb_grpc.BrokerStub(channel)  # type: ignore[no-untyped-call]
        admin = pb_grpc.AdminStub(channel)  # type: ignore[no-untyped-call]
        security = spb_grpc.SecurityStub(channel)  # type: ignore[no-untyped-call]
        groups = gpb_grpc.GroupsStub(channel)  # type: ignore[no-untyped-call]
        await admin.CreateTopic(pb.CreateTopicRequest(name="t", partitions=1), timeout=30)

        async def join(**fields: str) -> AsyncIterator[gpb.MemberRequest]:
            yield gpb.MemberRequest(join=gpb.JoinGroup(topics=["t"], **fields))

        async def membership(**fields: str) -> None:
            async for _ in groups.Membership(join(**fields), timeout=30):
                pass  # only the broker's log lines matter here

        calls = [
            broker.Produce(pb.ProduceRequest(topic=z, records=b"x"), timeout=30),
            broker.Fetch(pb.FetchRequest(topic=z), timeout=30),
            broker.InitProducerId(pb.InitProducerIdRequest(producer_name=z), timeout=30),
            broker.Metadata(pb.MetadataRequest(topics=[z]), timeout=30),
            admin.CreateTopic(pb.CreateTopicRequest(name=z, partitions=1), timeout=30),
            admin.CreateTopic(pb.CreateTopicRequest(name="u", partitions=1,
                                                    configs={z: z}), timeout=30),
            admin.AlterTopicConfigs(pb.AlterTopicConfigsRequest(name="t", set={z: "1"}),
                                    timeout=30),
            admin.DeleteTopic(pb.DeleteTopicRequest(name=z), timeout=30),
            security.ScramStart(spb.ScramStartRequest(mechanism=z[:4000]), timeout=30),
            security.ScramStart(spb.ScramStartRequest(
                mechanism="SCRAM-SHA-512", client_first_message=f"n,,n={z[:4000]},r=x"),
                timeout=30),
            security.ScramFinish(spb.ScramFinishRequest(
                exchange_id="e", client_final_message=z[:4000]), timeout=30),
            security.CreateUser(spb.UpsertUserRequest(name=z), timeout=30),
            groups.DescribeGroup(gpb.DescribeGroupRequest(group_id=z), timeout=30),
            groups.CommitOffsets(gpb.CommitOffsetsRequest(
                group_id="g", member_id=z, offsets=[gpb.OffsetCommit(
                    topic="t", partition=0, offset=0, metadata=z)]), timeout=30),
            membership(group_id="g", client_id=z),
            membership(group_id="g", instance_id=z),
            membership(group_id="g", member_id=z),
            membership(group_id=z),
        ]
        for index, call in enumerate(calls):
            try:
                await call  # type: ignore[misc]  # an unknown user's SCRAM start is answered
            except grpc.aio.AioRpcError as refused:
                assert refused.code() not in (grpc.StatusCode.UNKNOWN,
                                              grpc.StatusCode.INTERNAL), (index, refused)
                assert len(refused.details() or "") < 2000, index
    assert chatty.serving()
    log = chatty.log()
    assert RUN not in log
    assert max(len(line) for line in log.splitlines()) < 2000
