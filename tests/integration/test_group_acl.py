"""Consumer groups with authorization on (real broker process): joining needs read on the
group, committing needs read on the group and on each topic, listing and fetching offsets
show only what the caller may describe, and a refusal changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from odradek.client import Admin, Consumer, Producer
from odradek.client.acls import acl
from odradek.client.errors import PermissionDeniedError
from odradek.v1 import groups_pb2 as gpb
from odradek.v1 import groups_pb2_grpc as gpb_grpc
from tests.brokers import BrokerProcess
from tests.integration.test_acl import (  # noqa: F401 - fixtures
    ADMIN_PASSWORD,
    PASSWORDS,
    env_password,
    login_channel,
    secured,
)

GROUP_BINDINGS = [
    acl("User:alice", "group", "team-", "read", pattern_type="prefixed"),
    acl("User:carol", "group", "carol-g", "describe"),
]


@pytest.fixture
async def groups_secured(secured: BrokerProcess,  # noqa: F811 - the imported fixture
                         ) -> AsyncIterator[BrokerProcess]:
    async with Admin(secured.address, username="admin", password=ADMIN_PASSWORD) as admin:
        await admin.create_acls(GROUP_BINDINGS)
    async with Producer(secured.address, username="admin", password=ADMIN_PASSWORD) as p:
        for i in range(10):
            await p.send("orders", f"v{i}".encode(), key=b"k", partition=0)
        await p.flush()
    yield secured


def groups(channel: grpc.aio.Channel) -> gpb_grpc.GroupsStub:
    return gpb_grpc.GroupsStub(channel)  # type: ignore[no-untyped-call]


async def code_of(call: object) -> str:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return "OK"


async def coordinator_ready(channel: grpc.aio.Channel, group: str) -> None:
    """The internal topic is made when a coordinator is first looked for, then its partition
    is loaded: until then the broker answers UNAVAILABLE (retriable)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        try:
            await groups(channel).FindCoordinator(gpb.FindCoordinatorRequest(group_id=group))
            await groups(channel).FetchOffsets(gpb.FetchOffsetsRequest(group_id=group))
            return
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or \
                    asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


def commit(group: str, topic: str, offset: int) -> gpb.CommitOffsetsRequest:
    return gpb.CommitOffsetsRequest(group_id=group, offsets=[
        gpb.OffsetCommit(topic=topic, partition=0, offset=offset)])


async def test_a_member_with_group_and_topic_read_consumes_and_commits(
        groups_secured: BrokerProcess) -> None:
    async with Consumer(groups_secured.address, username="alice", password=PASSWORDS["alice"],
                        group_id="team-a", auto_offset_reset="earliest",
                        session_timeout_ms=3000) as consumer:
        consumer.subscribe(["orders"])
        seen = []
        for _ in range(100):
            seen += await consumer.poll(timeout_ms=200)
            if len(seen) >= 10:
                break
        assert [r.value for r in seen] == [f"v{i}".encode() for i in range(10)]
        await consumer.commit()
    async with Admin(groups_secured.address, username="admin",
                     password=ADMIN_PASSWORD) as admin:
        assert await admin.group_offsets("team-a") == {("orders", 0): seen[-1].offset + 1}


async def test_joining_without_group_read_is_refused(groups_secured: BrokerProcess) -> None:
    # bob may read logs-app, but no group.
    async with Consumer(groups_secured.address, username="bob", password=PASSWORDS["bob"],
                        group_id="team-b", auto_offset_reset="earliest") as consumer:
        consumer.subscribe(["logs-app"])
        with pytest.raises(PermissionDeniedError):
            for _ in range(100):
                await consumer.poll(timeout_ms=100)
                await asyncio.sleep(0.05)
    async with login_channel(groups_secured.address, "bob") as bob:
        assert await code_of(groups(bob).FindCoordinator(
            gpb.FindCoordinatorRequest(group_id="team-b"))) == "PERMISSION_DENIED"


async def test_offsets_need_the_topic_too_and_refusals_change_nothing(
        groups_secured: BrokerProcess) -> None:
    addr = groups_secured.address
    async with login_channel(addr, "alice") as alice, login_channel(addr, "carol") as carol, \
            login_channel(addr, "bob") as bob, \
            login_channel(addr, "admin", ADMIN_PASSWORD) as admin:
        for group in ("team-x", "carol-g"):
            await coordinator_ready(admin, group)
        assert await code_of(groups(alice).CommitOffsets(commit("team-x", "orders", 3))) == "OK"
        # alice may not read "secret": the whole commit is refused.
        both = gpb.CommitOffsetsRequest(group_id="team-x", offsets=[
            gpb.OffsetCommit(topic="orders", partition=0, offset=7),
            gpb.OffsetCommit(topic="secret", partition=0, offset=1)])
        assert await code_of(groups(alice).CommitOffsets(both)) == "PERMISSION_DENIED"
        # carol may describe carol-g but not read it: no commit.
        assert await code_of(groups(carol).CommitOffsets(
            commit("carol-g", "secret", 1))) == "PERMISSION_DENIED"
        fetched = await groups(admin).FetchOffsets(gpb.FetchOffsetsRequest(group_id="team-x"))
        assert [(o.topic, o.offset) for o in fetched.offsets] == [("orders", 3)]
        # A commit by admin on a topic alice may not describe stays hidden from her.
        await groups(admin).CommitOffsets(commit("team-x", "secret", 2))
        mine = await groups(alice).FetchOffsets(gpb.FetchOffsetsRequest(group_id="team-x"))
        assert [(o.topic, o.offset) for o in mine.offsets] == [("orders", 3)]
        # Listing shows the groups one may describe; deleting needs delete.
        listed = {g.group_id for g in (await groups(alice).ListGroups(
            gpb.ListGroupsRequest())).groups}
        assert listed == {"team-x"}
        assert not (await groups(bob).ListGroups(gpb.ListGroupsRequest())).groups
        assert await code_of(groups(alice).DeleteGroup(
            gpb.DeleteGroupRequest(group_id="team-x"))) == "PERMISSION_DENIED"
        assert await code_of(groups(bob).DescribeGroup(
            gpb.DescribeGroupRequest(group_id="team-x"))) == "PERMISSION_DENIED"
        assert await code_of(groups(alice).ResetOffsets(gpb.ResetOffsetsRequest(
            group_id="team-x", to_earliest=True,
            partitions=[gpb.TopicPartitions(topic="secret")]))) == "PERMISSION_DENIED"
        # Naming no topic resets every committed one: alice may not read "secret".
        assert await code_of(groups(alice).ResetOffsets(gpb.ResetOffsetsRequest(
            group_id="team-x", to_earliest=True))) == "PERMISSION_DENIED"
        # Describing shows offsets and lag of the topics she may describe only.
        described = await groups(alice).DescribeGroup(
            gpb.DescribeGroupRequest(group_id="team-x"))
        assert {p.topic for p in described.partitions} == {"orders"}
        full = await groups(admin).DescribeGroup(gpb.DescribeGroupRequest(group_id="team-x"))
        assert {p.topic for p in full.partitions} == {"orders", "secret"}
        after = await groups(admin).FetchOffsets(gpb.FetchOffsetsRequest(group_id="team-x"))
        assert sorted((o.topic, o.offset) for o in after.offsets) == [
            ("orders", 3), ("secret", 2)]
        assert await code_of(groups(admin).DeleteGroup(
            gpb.DeleteGroupRequest(group_id="team-x"))) == "OK"


async def test_a_join_leaves_out_topics_the_member_may_not_describe(
        groups_secured: BrokerProcess) -> None:
    addr = groups_secured.address
    async with Consumer(addr, username="alice", password=PASSWORDS["alice"],
                        group_id="team-hidden", auto_offset_reset="earliest",
                        session_timeout_ms=3000) as consumer:
        # alice reads orders; "secret" she may not describe.
        consumer.subscribe(["orders", "secret"])
        seen = []
        for _ in range(100):
            seen += await consumer.poll(timeout_ms=200)
            if len(seen) >= 10:
                break
        assert {r.topic for r in seen} == {"orders"}
        assert consumer.assignment() == {("orders", 0)}
        assert consumer.refused_topics == frozenset({"secret"})
        async with Admin(addr, username="admin", password=ADMIN_PASSWORD) as admin:
            [member] = (await admin.describe_group("team-hidden")).members
            assert member.topics == ("orders",)
            assert {tp.topic for tp in member.assigned} == {"orders"}

    # Nothing describable left: refused, alike for a hidden and a missing topic.
    async with login_channel(addr, "alice") as alice:
        async def join_only(topic: str) -> grpc.aio.AioRpcError:
            async def requests() -> AsyncIterator[gpb.MemberRequest]:
                yield gpb.MemberRequest(join=gpb.JoinGroup(group_id="team-hidden",
                                                           topics=[topic]))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in groups(alice).Membership(requests(), timeout=20):
                    pass
            return refused.value

        hidden, missing = await join_only("secret"), await join_only("no-such-topic")
        for error in (hidden, missing):
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert hidden.details().replace("secret", "X") == \
            missing.details().replace("no-such-topic", "X")
