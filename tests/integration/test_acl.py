"""Users and ACLs through the real gRPC port of real broker processes: an exhaustive
matrix of principal x RPC x resource (topics, the cluster, groups: join, describe, reset;
named producers) checked against an oracle written here (not the
broker's authorizer), refusals that change nothing, undescribable topics that look like
missing ones, identical errors for unknown users and wrong passwords, mTLS principals,
persistence across a restart and replication to every broker of a cluster."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from odradek.client import Admin
from odradek.client.acls import acl, acl_filter, binding_pb, filter_pb
from odradek.client.auth import ChannelSession, ScramLogin, authenticate, interceptors
from odradek.client.errors import from_rpc_error
from odradek.records import encode_batch
from odradek.security.certs import Pki, issue, load_pair, make_pki
from odradek.security.tls import ClientTLS, open_channel
from odradek.v1 import groups_pb2 as gpb
from odradek.v1 import groups_pb2_grpc as gpb_grpc
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from odradek.v1 import security_pb2 as spb
from odradek.v1 import security_pb2_grpc as spb_grpc
from tests.brokers import BrokerProcess, ClusterProcesses

ADMIN_PASSWORD = "admin-secret"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
CLUSTER = "odradek-cluster"
EXISTING = ["orders", "orders-eu", "logs-app", "secret", "public"]
MISSING = ["orders-new", "carol-x", "ghost", "logs-new"]
OK = "OK"

# The bindings under test, as plain tuples:
# (principal, resource type, name, pattern, operation, permission, host)
BINDINGS = [
    ("User:alice", "topic", "orders", "prefixed", "read", "allow", "*"),
    ("User:alice", "topic", "orders", "literal", "write", "allow", "*"),
    ("User:alice", "topic", "orders-eu", "literal", "read", "deny", "*"),
    ("User:alice", "cluster", CLUSTER, "literal", "create", "allow", "*"),
    ("User:alice", "cluster", CLUSTER, "literal", "describe", "allow", "*"),
    ("User:bob", "topic", "logs-app", "literal", "all", "allow", "*"),
    ("User:bob", "topic", "*", "literal", "delete", "deny", "*"),
    ("User:bob", "topic", "logs", "prefixed", "alter_configs", "allow", "*"),
    ("User:bob", "cluster", CLUSTER, "literal", "alter", "allow", "10.9.9.9"),
    ("User:bob", "topic", "orders", "literal", "describe", "allow", "127.0.0.1"),
    ("User:carol", "topic", "carol-", "prefixed", "create", "allow", "*"),
    ("User:carol", "topic", "carol-", "prefixed", "delete", "allow", "*"),
    ("User:carol", "cluster", CLUSTER, "literal", "all", "allow", "*"),
    ("User:carol", "topic", "secret", "literal", "all", "deny", "*"),
    ("User:carol", "topic", "se", "prefixed", "read", "allow", "*"),
    ("User:bob", "topic", "orders-eu", "literal", "write", "allow", "*"),
    ("User:*", "topic", "orders-eu", "literal", "write", "deny", "*"),
    ("User:*", "topic", "public", "literal", "describe", "allow", "*"),
    ("User:*", "topic", "public", "literal", "read", "allow", "*"),
]
IMPLIES = {"describe": {"read", "write", "delete", "alter"}, "describe_configs": {"alter_configs"}}
# Groups and named producers, added by the matrix test only (other tests share BINDINGS).
GROUP_AND_NAME_BINDINGS = [
    ("User:alice", "group", "team-", "prefixed", "read", "allow", "*"),
    ("User:bob", "group", "bob-g", "literal", "describe", "allow", "*"),
    ("User:bob", "group", "team-b", "literal", "all", "allow", "*"),
    ("User:bob", "group", "team-b", "literal", "read", "deny", "*"),
    ("User:alice", "producer_name", "alice-", "prefixed", "write", "allow", "*"),
    ("User:bob", "producer_name", "shared", "literal", "describe", "allow", "*"),
    ("User:*", "producer_name", "shared", "literal", "write", "allow", "*"),
]
MATRIX_BINDINGS = BINDINGS + GROUP_AND_NAME_BINDINGS
GROUPS = ["team-a", "team-b", "bob-g", "other-g"]
PRODUCER_NAMES = ["alice-x", "shared", "ghost-name"]


def oracle(principal: str, rtype: str, name: str, op: str, host: str = "127.0.0.1",
           bindings: list[tuple[str, ...]] | None = None) -> bool:
    """Kafka's rules, independently of odradek.broker.auth."""
    if principal == "User:admin":
        return True

    def matches(b: tuple[str, ...]) -> bool:
        who, btype, bname, pattern, _, _, bhost = b
        if who not in (principal, "User:*") or btype != rtype or bhost not in ("*", host):
            return False
        return name.startswith(bname) if pattern == "prefixed" else bname in ("*", name)

    hits = [b for b in (BINDINGS if bindings is None else bindings) if matches(b)]
    if any(b[5] == "deny" and b[4] in (op, "all") for b in hits):
        return False
    ok_ops = {op, "all"} | IMPLIES.get(op, set())
    return any(b[5] == "allow" and b[4] in ok_ops for b in hits)


def code_of(exc: grpc.aio.AioRpcError) -> str:
    return exc.code().name


@dataclass
class Call:
    """One RPC of the matrix: the permission it needs (any of `needs`), and how a
    refusal shows ("hidden": as a missing topic)."""

    label: str
    needs: list[tuple[str, str, str]]
    run: Callable[[grpc.aio.Channel], Any]
    hidden: bool = False
    # Needed besides one of `needs` (a group call's topics).
    also: list[tuple[str, str, str]] = field(default_factory=list)

    def allowed(self, principal: str) -> bool:
        def ok(need: tuple[str, str, str]) -> bool:
            return oracle(principal, *need, bindings=MATRIX_BINDINGS)
        return any(ok(n) for n in self.needs) and all(ok(n) for n in self.also)


def batch() -> bytes:
    return encode_batch([(int(time.time() * 1000), b"k", b"v")])


def topic_calls(topic: str) -> list[Call]:
    def broker(ch: grpc.aio.Channel) -> pb_grpc.BrokerStub:
        return pb_grpc.BrokerStub(ch)  # type: ignore[no-untyped-call]

    def admin(ch: grpc.aio.Channel) -> pb_grpc.AdminStub:
        return pb_grpc.AdminStub(ch)  # type: ignore[no-untyped-call]

    t = ("topic", topic)
    return [
        Call(f"Produce {topic}", [(*t, "write")], lambda ch: broker(ch).Produce(
            pb.ProduceRequest(topic=topic, partition=0, records=batch()), timeout=10)),
        Call(f"Fetch {topic}", [(*t, "read")], lambda ch: broker(ch).Fetch(
            pb.FetchRequest(topic=topic, partition=0, offset=0), timeout=10)),
        Call(f"ListOffsets {topic}", [(*t, "read")], lambda ch: broker(ch).ListOffsets(
            pb.ListOffsetsRequest(topic=topic, partition=0, spec=pb.OFFSET_SPEC_LATEST),
            timeout=10)),
        Call(f"Metadata {topic}", [(*t, "describe")], lambda ch: broker(ch).Metadata(
            pb.MetadataRequest(topics=[topic]), timeout=10), hidden=True),
        Call(f"DescribeTopic {topic}", [(*t, "describe")], lambda ch: admin(ch).DescribeTopic(
            pb.DescribeTopicRequest(name=topic), timeout=10), hidden=True),
        Call(f"CreateTopic {topic}", [("cluster", CLUSTER, "create"), (*t, "create")],
             lambda ch: admin(ch).CreateTopic(pb.CreateTopicRequest(
                 name=topic, partitions=1, replication_factor=1, validate_only=True),
                 timeout=10)),
        Call(f"AlterTopicConfigs {topic}", [(*t, "alter_configs")],
             lambda ch: admin(ch).AlterTopicConfigs(pb.AlterTopicConfigsRequest(
                 name=topic, set={"retention.ms": "1000"}, validate_only=True), timeout=10)),
        Call(f"CreatePartitions {topic}", [(*t, "alter")],
             lambda ch: admin(ch).CreatePartitions(pb.CreatePartitionsRequest(
                 name=topic, total_count=2, validate_only=True), timeout=10)),
        # Before offset 0: a change to no topic's log start, allowed or not.
        Call(f"DeleteRecords {topic}", [(*t, "delete")],
             lambda ch: admin(ch).DeleteRecords(pb.DeleteRecordsRequest(
                 topic=topic, partition=0, before_offset=0), timeout=10)),
        Call(f"ReassignPartition {topic}", [("cluster", CLUSTER, "alter")],
             lambda ch: admin(ch).ReassignPartition(pb.ReassignPartitionRequest(
                 topic=topic, partition=0, replicas=[0], validate_only=True), timeout=10)),
    ]


def missing_topic_calls(topic: str) -> list[Call]:
    """Deletion is only tried on topics that do not exist: the matrix changes nothing."""
    return [Call(f"DeleteTopic {topic}", [("topic", topic, "delete")],
                 lambda ch: pb_grpc.AdminStub(ch).DeleteTopic(  # type: ignore[no-untyped-call]
                     pb.DeleteTopicRequest(name=topic), timeout=10))]


def cluster_calls() -> list[Call]:
    def sec(ch: grpc.aio.Channel) -> spb_grpc.SecurityStub:
        return spb_grpc.SecurityStub(ch)  # type: ignore[no-untyped-call]

    existing = acl(*BINDINGS[0][:3], BINDINGS[0][4], BINDINGS[0][5], BINDINGS[0][3])
    alter, describe = [("cluster", CLUSTER, "alter")], [("cluster", CLUSTER, "describe")]
    return [
        Call("DrainBroker", alter, lambda ch: pb_grpc.AdminStub(ch).DrainBroker(  # type: ignore[no-untyped-call]
            pb.DrainBrokerRequest(broker_id=0, validate_only=True), timeout=10)),
        # One broker: every partition is led by its preferred replica already.
        Call("ElectLeaders", alter, lambda ch: pb_grpc.AdminStub(ch).ElectLeaders(  # type: ignore[no-untyped-call]
            pb.ElectLeadersRequest(), timeout=10)),
        Call("DescribeBrokerConfigs", describe,
             lambda ch: pb_grpc.AdminStub(ch).DescribeBrokerConfigs(  # type: ignore[no-untyped-call]
                 pb.DescribeBrokerConfigsRequest(), timeout=10)),
        Call("ListUsers", describe, lambda ch: sec(ch).ListUsers(spb.ListUsersRequest(),
                                                                timeout=10)),
        Call("ListAcls", describe, lambda ch: sec(ch).ListAcls(spb.ListAclsRequest(),
                                                              timeout=10)),
        Call("CreateUser (exists)", alter, lambda ch: sec(ch).CreateUser(
            spb.UpsertUserRequest(name="alice", credential=_credential("x")), timeout=10)),
        Call("DeleteUser (missing)", alter, lambda ch: sec(ch).DeleteUser(
            spb.DeleteUserRequest(name="nobody"), timeout=10)),
        Call("CreateAcls (present)", alter, lambda ch: sec(ch).CreateAcls(
            spb.CreateAclsRequest(acls=[binding_pb(existing)]), timeout=10)),
        Call("DeleteAcls (none match)", alter, lambda ch: sec(ch).DeleteAcls(
            spb.DeleteAclsRequest(filters=[filter_pb(acl_filter(principal="User:nobody"))]),
            timeout=10)),
        # A producer id: idempotent_write on the cluster, or write on some topic.
        Call("InitProducerId",
             [("cluster", CLUSTER, "idempotent_write")]
             + [("topic", t, "write") for t in EXISTING + MISSING],
             lambda ch: pb_grpc.BrokerStub(ch).InitProducerId(  # type: ignore[no-untyped-call]
                 pb.InitProducerIdRequest(), timeout=10)),
    ]


def group_calls(group: str) -> list[Call]:
    def groups(ch: grpc.aio.Channel) -> gpb_grpc.GroupsStub:
        return gpb_grpc.GroupsStub(ch)  # type: ignore[no-untyped-call]

    async def join(ch: grpc.aio.Channel) -> None:
        """Joins and leaves at once: OK once the coordinator said Joined."""
        out: asyncio.Queue[gpb.MemberRequest | None] = asyncio.Queue()
        out.put_nowait(gpb.MemberRequest(join=gpb.JoinGroup(
            group_id=group, topics=["orders"], session_timeout_ms=6000)))

        async def requests() -> AsyncIterator[gpb.MemberRequest]:
            while (item := await out.get()) is not None:
                yield item

        call = groups(ch).Membership(requests(), timeout=20)
        async for answer in call:
            if answer.WhichOneof("kind") == "joined":
                out.put_nowait(gpb.MemberRequest(leave=gpb.LeaveGroup()))
                out.put_nowait(None)
                break
        call.cancel()

    g, orders = ("group", group), [("topic", "orders", "read")]
    # The join first: it makes the group, so that describing it answers the same all along.
    return [
        Call(f"Join {group} orders", [(*g, "read")], join, also=[("topic", "orders",
                                                                 "describe")]),
        Call(f"FindCoordinator {group}", [(*g, "describe")], lambda ch: groups(ch)
             .FindCoordinator(gpb.FindCoordinatorRequest(group_id=group), timeout=10)),
        Call(f"DescribeGroup {group}", [(*g, "describe")], lambda ch: groups(ch)
             .DescribeGroup(gpb.DescribeGroupRequest(group_id=group), timeout=10)),
        Call(f"ResetOffsets {group} orders", [(*g, "read")], lambda ch: groups(ch)
             .ResetOffsets(gpb.ResetOffsetsRequest(
                 group_id=group, to_earliest=True, dry_run=True,
                 partitions=[gpb.TopicPartitions(topic="orders")]), timeout=10),
             also=orders),
    ]


def producer_name_calls(name: str) -> list[Call]:
    return [Call(f"InitProducerId {name}", [("producer_name", name, "write")],
                 lambda ch: pb_grpc.BrokerStub(ch).InitProducerId(  # type: ignore[no-untyped-call]
                     pb.InitProducerIdRequest(producer_name=name), timeout=10))]


async def offsets_topic_ready(channel: grpc.aio.Channel) -> None:
    """The coordinators' internal topic is made at the first lookup; until it is loaded
    the answer is UNAVAILABLE (retriable)."""
    stub = gpb_grpc.GroupsStub(channel)  # type: ignore[no-untyped-call]
    deadline = time.monotonic() + 30
    while True:
        try:
            for group in GROUPS:
                await stub.FindCoordinator(gpb.FindCoordinatorRequest(group_id=group),
                                           timeout=10)
                await stub.FetchOffsets(gpb.FetchOffsetsRequest(group_id=group), timeout=10)
            return
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def _credential(password: str) -> spb.ScramCredential:
    from odradek.security import scram

    c = scram.make_credential(password, 4096)
    return spb.ScramCredential(mechanism=scram.MECHANISM, salt=c.salt, iterations=4096,
                               stored_key=c.stored_key, server_key=c.server_key)


async def outcome(call: Call, channel: grpc.aio.Channel) -> str:
    try:
        await call.run(channel)
    except grpc.aio.AioRpcError as exc:
        return code_of(exc)
    return OK


def login_channel(address: str, user: str | None, password: str | None = None,
                  tls: ClientTLS | None = None) -> grpc.aio.Channel:
    if user is None:
        return open_channel(address, tls)
    session = ChannelSession(ScramLogin(user, password or PASSWORDS[user]))
    channel = open_channel(address, tls, interceptors=interceptors(session))
    session.channel = channel
    return channel


async def wait_for_login(address: str, user: str, password: str,
                         tls: ClientTLS | None = None, timeout: float = 20) -> None:
    """The bootstrap user appears once the controller has created it."""
    deadline = time.monotonic() + timeout
    async with open_channel(address, tls) as channel:
        while True:
            try:
                await authenticate(channel, ScramLogin(user, password))
                return
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


def secured_args(*extra: str) -> list[str]:
    # Frequent metadata snapshots: a restart then loads users and ACLs from a snapshot
    # and replays the log after it.
    return ["--authorization", "on", "--super-users", "User:admin", "--bootstrap-user",
            "admin", "--metadata-snapshot-every", "5", *extra]


@pytest.fixture
def env_password() -> Iterator[None]:
    old = os.environ.get("ODRADEK_BOOTSTRAP_PASSWORD")
    os.environ["ODRADEK_BOOTSTRAP_PASSWORD"] = ADMIN_PASSWORD
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("ODRADEK_BOOTSTRAP_PASSWORD", None)
        else:
            os.environ["ODRADEK_BOOTSTRAP_PASSWORD"] = old


@pytest.fixture
async def secured(tmp_path: Path, env_password: None) -> AsyncIterator[BrokerProcess]:
    """One broker, authorization on, users alice/bob/carol, the topics and BINDINGS."""
    proc = BrokerProcess(tmp_path / "b", extra_args=secured_args())
    try:
        proc.start()
        await wait_for_login(proc.address, "admin", ADMIN_PASSWORD)
        async with Admin(proc.address, username="admin", password=ADMIN_PASSWORD) as admin:
            for user, password in PASSWORDS.items():
                await admin.create_user(user, password, iterations=4096)
            for topic in EXISTING:
                await admin.create_topic(topic, 1, 1)
            await admin.create_acls([acl(p, t, n, op, perm, pat, host)
                                     for p, t, n, pat, op, perm, host in BINDINGS])
        yield proc
    finally:
        proc.stop()


PRINCIPALS: list[tuple[str, str | None]] = [
    ("User:admin", "admin"), ("User:alice", "alice"), ("User:bob", "bob"),
    ("User:carol", "carol"), ("User:ANONYMOUS", None)]


async def test_matrix_of_principal_operation_resource(secured: BrokerProcess) -> None:
    calls = [c for t in EXISTING + MISSING for c in topic_calls(t)]
    calls += [c for t in MISSING for c in missing_topic_calls(t)]
    calls += cluster_calls()
    calls += [c for n in PRODUCER_NAMES for c in producer_name_calls(n)]
    calls += [c for g in GROUPS for c in group_calls(g)]
    channels = {p: login_channel(secured.address, user,
                                 ADMIN_PASSWORD if user == "admin" else None)
                for p, user in PRINCIPALS}
    try:
        await pb_grpc.BrokerStub(channels["User:admin"]).Produce(  # type: ignore[no-untyped-call]
            pb.ProduceRequest(topic="orders", partition=0, records=batch()), timeout=10)
        await spb_grpc.SecurityStub(channels["User:admin"]).CreateAcls(  # type: ignore[no-untyped-call]
            spb.CreateAclsRequest(acls=[binding_pb(acl(p, t, n, op, perm, pat, host)) for
                                        p, t, n, pat, op, perm, host in GROUP_AND_NAME_BINDINGS]),
            timeout=10)
        await offsets_topic_ready(channels["User:admin"])
        # What a principal allowed to do everything gets: the answer for allowed calls.
        baseline = {c.label: await outcome(c, channels["User:admin"]) for c in calls}
        assert baseline["DescribeTopic orders"] == OK
        assert baseline["DescribeTopic ghost"] == "NOT_FOUND"
        assert baseline["CreateTopic ghost"] == OK
        assert baseline["CreateTopic orders"] == "ALREADY_EXISTS"
        for group in GROUPS:
            assert baseline[f"Join {group} orders"] == OK
            assert baseline[f"ResetOffsets {group} orders"] == OK
        assert baseline["InitProducerId ghost-name"] == OK
        mismatches = []
        checked = 0
        for principal, _ in PRINCIPALS[1:]:
            for call in calls:
                if call.allowed(principal):
                    expected = baseline[call.label]
                else:
                    expected = "NOT_FOUND" if call.hidden else "PERMISSION_DENIED"
                got = await outcome(call, channels[principal])
                checked += 1
                if got != expected:
                    mismatches.append(f"{principal} {call.label}: expected {expected}, got {got}")
            visible = sorted(t.name for t in (await pb_grpc.AdminStub(  # type: ignore[no-untyped-call]
                channels[principal]).ListTopics(pb.ListTopicsRequest(), timeout=10)).topics)
            expected_visible = sorted(t for t in EXISTING
                                      if oracle(principal, "topic", t, "describe"))
            if visible != expected_visible:
                mismatches.append(f"{principal} ListTopics: {visible} != {expected_visible}")
            meta = await pb_grpc.BrokerStub(channels[principal]).Metadata(  # type: ignore[no-untyped-call]
                pb.MetadataRequest(), timeout=10)
            if sorted(t.name for t in meta.topics) != expected_visible:
                mismatches.append(f"{principal} Metadata: {[t.name for t in meta.topics]}")
            names = [n.name for n in (await pb_grpc.AdminStub(  # type: ignore[no-untyped-call]
                channels[principal]).ListProducerNames(pb.ListProducerNamesRequest(),
                                                       timeout=10)).producers]
            expected_names = [n for n in sorted(PRODUCER_NAMES) if oracle(
                principal, "producer_name", n, "describe", bindings=MATRIX_BINDINGS)]
            if names != expected_names:
                mismatches.append(f"{principal} ListProducerNames: {names} != "
                                  f"{expected_names}")
        assert not mismatches, "\n".join(mismatches)
        assert checked == 4 * len(calls)
        # The matrix exercises both answers for every kind of call.
        denied = [c.label for c in calls if not oracle("User:ANONYMOUS", *c.needs[0])]
        assert len(denied) > len(calls) // 2
    finally:
        for ch in channels.values():
            await ch.close()


async def status(coro: Any) -> tuple[str, str, dict[str, str]]:
    try:
        await coro
    except grpc.aio.AioRpcError as exc:
        err = from_rpc_error(exc)
        return exc.code().name, err.reason, err.metadata
    return OK, "", {}


async def test_refused_calls_change_nothing(secured: BrokerProcess) -> None:
    addr = secured.address
    async with login_channel(addr, "bob") as bob, login_channel(addr, "alice") as alice, \
            login_channel(addr, None) as anon, \
            login_channel(addr, "admin", ADMIN_PASSWORD) as admin:
        b_broker, b_admin = secured.stubs(bob)
        a_broker, a_admin = secured.stubs(admin)
        before = await a_broker.ListOffsets(pb.ListOffsetsRequest(
            topic="orders", partition=0, spec=pb.OFFSET_SPEC_LATEST))
        configs_before = (await a_admin.DescribeTopic(pb.DescribeTopicRequest(
            name="orders"))).configs
        refusals = [
            await status(b_broker.Produce(pb.ProduceRequest(topic="orders", partition=0,
                                                            records=batch()))),
            await status(b_admin.AlterTopicConfigs(pb.AlterTopicConfigsRequest(
                name="orders", set={"retention.ms": "1"}))),
            await status(b_admin.DeleteTopic(pb.DeleteTopicRequest(name="logs-app"))),
            await status(pb_grpc.AdminStub(alice).DeleteTopic(  # type: ignore[no-untyped-call]
                pb.DeleteTopicRequest(name="orders"))),
            await status(pb_grpc.AdminStub(anon).CreateTopic(  # type: ignore[no-untyped-call]
                pb.CreateTopicRequest(name="sneaky", partitions=1, replication_factor=1))),
            await status(spb_grpc.SecurityStub(alice).CreateUser(  # type: ignore[no-untyped-call]
                spb.UpsertUserRequest(name="mallory", credential=_credential("m")))),
            await status(spb_grpc.SecurityStub(bob).CreateAcls(  # type: ignore[no-untyped-call]
                spb.CreateAclsRequest(acls=[binding_pb(acl("User:bob", "topic", "*", "all"))]))),
            await status(spb_grpc.SecurityStub(alice).DeleteAcls(  # type: ignore[no-untyped-call]
                spb.DeleteAclsRequest(filters=[filter_pb(acl_filter())]))),
        ]
        for code, reason, meta in refusals:
            assert code == "PERMISSION_DENIED", refusals
            assert reason.endswith("_AUTHORIZATION_FAILED") and meta["principal"].startswith(
                "User:")
        after = await a_broker.ListOffsets(pb.ListOffsetsRequest(
            topic="orders", partition=0, spec=pb.OFFSET_SPEC_LATEST))
        assert after.offset == before.offset
        desc = await a_admin.DescribeTopic(pb.DescribeTopicRequest(name="orders"))
        assert list(desc.configs) == list(configs_before)
        names = {t.name for t in (await a_admin.ListTopics(pb.ListTopicsRequest())).topics}
        assert names == set(EXISTING)
        sec = spb_grpc.SecurityStub(admin)  # type: ignore[no-untyped-call]
        users = {u.name for u in (await sec.ListUsers(spb.ListUsersRequest())).users}
        assert users == {"admin", *PASSWORDS}
        assert len((await sec.ListAcls(spb.ListAclsRequest())).acls) == len(BINDINGS)
    # Refusals are counted like other failed calls.
    scrape = secured.scrape()
    assert ('odradek_rpc_errors_total{code="PERMISSION_DENIED",method="Produce",'
            'reason="TOPIC_AUTHORIZATION_FAILED"} 1.0') in scrape


async def test_a_stream_ends_when_its_acl_is_removed(secured: BrokerProcess) -> None:
    addr = secured.address
    async with login_channel(addr, "alice") as alice, \
            login_channel(addr, "admin", ADMIN_PASSWORD) as admin:
        a_broker, _ = secured.stubs(alice)
        admin_broker, _ = secured.stubs(admin)
        await admin_broker.Produce(pb.ProduceRequest(topic="orders", partition=0,
                                                     records=batch()))
        stream = a_broker.Subscribe(pb.SubscribeRequest(topic="orders", partition=0, offset=0))
        first = await asyncio.wait_for(stream.read(), 10)
        assert first.records
        deleted = await spb_grpc.SecurityStub(admin).DeleteAcls(spb.DeleteAclsRequest(  # type: ignore[no-untyped-call]
            filters=[filter_pb(acl_filter("User:alice", "topic", "orders", "read"))]))
        assert len(deleted.deleted) == 1
        await admin_broker.Produce(pb.ProduceRequest(topic="orders", partition=0,
                                                     records=batch()))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            while True:
                await asyncio.wait_for(stream.read(), 10)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_undescribable_topic_looks_like_a_missing_one(secured: BrokerProcess) -> None:
    async with login_channel(secured.address, "alice") as alice:
        broker, admin = secured.stubs(alice)
        for call in (lambda n: admin.DescribeTopic(pb.DescribeTopicRequest(name=n)),
                     lambda n: broker.Metadata(pb.MetadataRequest(topics=[n])),
                     lambda n: broker.Produce(pb.ProduceRequest(topic=n, partition=0,
                                                                records=batch())),
                     lambda n: broker.Fetch(pb.FetchRequest(topic=n, partition=0))):
            answers = []
            for name in ("secret", "no-such-topic"):
                try:
                    await call(name)
                    answers.append(("OK",))
                except grpc.aio.AioRpcError as exc:
                    answers.append((exc.code(), (exc.details() or "").replace(name, "T"),
                                    str(exc.trailing_metadata()).count("T")))
            assert answers[0] == answers[1], answers


async def test_wrong_password_and_unknown_user_fail_alike(secured: BrokerProcess) -> None:
    async def attempt(user: str, password: str) -> tuple[Any, ...]:
        async with open_channel(secured.address, None) as channel:
            try:
                await authenticate(channel, ScramLogin(user, password))
            except grpc.aio.AioRpcError as exc:
                err = from_rpc_error(exc)
                return exc.code(), exc.details(), err.reason, err.metadata
        raise AssertionError("authentication succeeded")

    wrong = await attempt("alice", "not-her-password")
    unknown = await attempt("nobody-at-all", "whatever")
    assert wrong == unknown
    log = secured.log()
    assert "user 'alice'" in log and "user 'nobody-at-all': unknown user" in log
    assert "not-her-password" not in log
    assert wrong[0] == grpc.StatusCode.UNAUTHENTICATED and wrong[2] == "AUTHENTICATION_FAILED"
    async with Admin(secured.address, username="alice", password="bad") as a:
        with pytest.raises(Exception) as info:
            await a.list_topics()
    assert getattr(info.value, "reason", "") == "AUTHENTICATION_FAILED"


async def test_password_change_ends_sessions_and_old_password(secured: BrokerProcess) -> None:
    async with Admin(secured.address, username="carol", password=PASSWORDS["carol"]) as carol:
        await carol.list_users()  # carol may do anything on the cluster
        async with Admin(secured.address, username="admin", password=ADMIN_PASSWORD) as admin:
            await admin.alter_user("carol", "new-pw", iterations=4096)
        # Carol's session ended; her client logs in again with the old password and fails.
        with pytest.raises(Exception) as info:
            await carol.list_users()
        assert getattr(info.value, "reason", "") == "AUTHENTICATION_FAILED"
    async with Admin(secured.address, username="carol", password="new-pw") as carol:
        assert "carol" in {u.name for u in await carol.list_users()}


def test_cli_users_and_acls(secured: BrokerProcess, tmp_path: Path) -> None:
    pw = tmp_path / "admin.pw"
    pw.write_text(ADMIN_PASSWORD + "\n")
    new = tmp_path / "dave.pw"
    new.write_text("dave-pw\n")
    env = dict(os.environ, ODRADEK_BOOTSTRAP=secured.address, ODRADEK_USERNAME="admin",
               ODRADEK_PASSWORD_FILE=str(pw))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "odradek.cli.main", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    r = cli("user", "create", "dave", "--new-password-file", str(new), "--iterations", "4096")
    assert r.returncode == 0, r.stderr
    assert "dave" in cli("user", "list").stdout
    r = cli("acl", "add", "--allow-principal", "User:dave", "--operation", "read",
            "--operation", "describe", "--topic", "orders", "--resource-pattern-type",
            "prefixed")
    assert r.returncode == 0, r.stderr
    listed = cli("acl", "list", "--topic", "orders").stdout
    assert "User:dave\tallow\tread\ttopic:orders\tprefixed\t*" in listed
    dave_env = dict(env, ODRADEK_USERNAME="dave", ODRADEK_PASSWORD_FILE=str(new))
    r = subprocess.run([sys.executable, "-m", "odradek.cli.main", "topic", "list"],
                       env=dave_env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "orders" in r.stdout and "secret" not in r.stdout, r
    r = subprocess.run([sys.executable, "-m", "odradek.cli.main", "topic", "delete", "orders"],
                       env=dave_env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "TOPIC_AUTHORIZATION_FAILED" in r.stderr, r
    r = cli("acl", "remove", "--allow-principal", "User:dave", "--topic", "orders")
    assert r.returncode == 0 and r.stdout.count("Removed") == 2, r
    assert cli("user", "delete", "dave").returncode == 0
    assert "dave" not in cli("user", "list").stdout
    # The broker's log never shows a password (the client sent none; the bootstrap
    # password was hashed at once).
    assert ADMIN_PASSWORD not in secured.log() and "dave-pw" not in secured.log()


async def test_users_and_acls_survive_a_restart(secured: BrokerProcess) -> None:
    expected = {t for t in EXISTING if oracle("User:alice", "topic", t, "describe")}
    async with Admin(secured.address, username="alice", password=PASSWORDS["alice"]) as alice:
        assert {t.name for t in await alice.list_topics()} == expected
        secured.stop()
        secured.start()
        # The same client: its session died with the broker; it logs in again by itself.
        assert {t.name for t in await alice.list_topics()} == expected


async def test_sessions_expire_and_clients_renew_them(tmp_path: Path,
                                                      env_password: None) -> None:
    proc = BrokerProcess(tmp_path / "b", extra_args=secured_args("--session-lifetime-s", "2"))
    try:
        proc.start()
        await wait_for_login(proc.address, "admin", ADMIN_PASSWORD)
        async with open_channel(proc.address, None) as channel:
            reply = await authenticate(channel, ScramLogin("admin", ADMIN_PASSWORD))
            assert reply.expires_in_ms == 2000 and reply.principal == "User:admin"
            token = (("authorization", f"Bearer {reply.session_token}"),)
            stub = spb_grpc.SecurityStub(channel)  # type: ignore[no-untyped-call]
            await stub.ListUsers(spb.ListUsersRequest(), metadata=token)
            refusal: grpc.aio.AioRpcError | None = None
            deadline = time.monotonic() + 30
            while refusal is None and time.monotonic() < deadline:  # the lifetime is 2 s
                try:
                    await stub.ListUsers(spb.ListUsersRequest(), metadata=token)
                except grpc.aio.AioRpcError as exc:
                    refusal = exc
                else:
                    await asyncio.sleep(0.1)
            assert refusal is not None, "the session never expired"
            assert refusal.code() == grpc.StatusCode.UNAUTHENTICATED
            assert from_rpc_error(refusal).reason == "SESSION_EXPIRED"
        # A client keeps working across several lifetimes: it renews before expiry.
        async with Admin(proc.address, username="admin", password=ADMIN_PASSWORD) as admin:
            for _ in range(10):
                assert "admin" in {u.name for u in await admin.list_users()}
                await asyncio.sleep(0.5)
    finally:
        proc.stop()


# --- certificates ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def client_cert(pki: Pki, directory: Path, cn: str) -> ClientTLS:
    ca_cert, ca_key = load_pair(pki.ca, pki.ca_key)
    cert, key = issue(ca_cert, ca_key, cn, sans=(), server=False)
    cert_path, key_path = directory / f"{cn}.pem", directory / f"{cn}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ClientTLS(pki.ca, cert_path, key_path)


def tls_broker_args(pki: Pki) -> list[str]:
    return ["--listener", "tls", "--tls-cert", str(pki.broker_cert), "--tls-key",
            str(pki.broker_key), "--tls-ca", str(pki.ca), "--tls-client-auth", "required"]


async def test_mtls_common_name_is_the_principal(tmp_path: Path, pki: Pki) -> None:
    admin_tls = ClientTLS(pki.ca, pki.client_cert, pki.client_key)  # CN=client
    proc = BrokerProcess(tmp_path / "b", tls=admin_tls, extra_args=[
        *tls_broker_args(pki), "--authorization", "on", "--super-users", "User:client"])
    try:
        proc.start()
        async with open_channel(proc.address, admin_tls) as ch:
            _, admin = proc.stubs(ch)
            for name in ("visible", "hidden"):
                await admin.CreateTopic(pb.CreateTopicRequest(name=name, partitions=1,
                                                              replication_factor=1))
            await spb_grpc.SecurityStub(ch).CreateAcls(spb.CreateAclsRequest(acls=[  # type: ignore[no-untyped-call]
                binding_pb(acl("User:erin", "topic", "visible", "describe"))]))
        erin = client_cert(pki, tmp_path, "erin")
        frank = client_cert(pki, tmp_path, "frank")
        async with open_channel(proc.address, erin) as ch:
            topics = (await proc.stubs(ch)[1].ListTopics(pb.ListTopicsRequest())).topics
            assert [t.name for t in topics] == ["visible"]
            code = await status(proc.stubs(ch)[1].CreateTopic(pb.CreateTopicRequest(
                name="x", partitions=1)))
            assert code[0] == "PERMISSION_DENIED" and code[2]["principal"] == "User:erin"
        async with open_channel(proc.address, frank) as ch:
            # Allowed to describe no topic at all: denied, rather than an empty list that
            # reads as "no topics"; the denial names no topic.
            code = await status(proc.stubs(ch)[1].ListTopics(pb.ListTopicsRequest()))
            assert code[0] == "PERMISSION_DENIED" and code[2]["principal"] == "User:frank"
            assert "resource_name" not in code[2]
    finally:
        proc.stop()


async def test_users_and_acls_replicate_to_every_broker(tmp_path: Path, pki: Pki) -> None:
    """Three brokers over mutual TLS with authorization on: the brokers' own certificate
    principal (CN=broker) is a super user, so they replicate; a user created through one
    broker logs in on each of the others and the ACLs apply there too."""
    admin_tls = ClientTLS(pki.ca, pki.client_cert, pki.client_key)
    cluster = ClusterProcesses(tmp_path, 3, [*tls_broker_args(pki), "--authorization", "on",
                                             "--super-users", "User:client"], tls=admin_tls)
    try:
        cluster.start()
        first, *others = cluster.brokers
        async with Admin(first.address, **_tls_kwargs(admin_tls)) as admin:
            await admin.create_topic("shared", 1, 3)
            await admin.create_user("grace", "grace-pw", iterations=4096)
            await admin.create_acls([acl("User:grace", "topic", "shared", "read")])
        # A client certificate without rights, and grace's SCRAM login on top of it.
        nobody = client_cert(pki, tmp_path, "nobody")
        for broker in others:
            deadline = time.monotonic() + 20
            while True:
                async with login_channel(broker.address, "grace", "grace-pw",
                                         tls=nobody) as ch:
                    try:
                        reply = await pb_grpc.AdminStub(ch).ListTopics(  # type: ignore[no-untyped-call]
                            pb.ListTopicsRequest(), timeout=10)
                    except grpc.aio.AioRpcError:
                        reply = None
                if reply is not None and [t.name for t in reply.topics] == ["shared"]:
                    break
                assert time.monotonic() < deadline, f"grace cannot see 'shared' on {broker}"
                await asyncio.sleep(0.2)
            async with open_channel(broker.address, nobody) as ch:
                # No binding of nobody's: refused, not an empty list.
                code = await status(pb_grpc.AdminStub(ch).ListTopics(  # type: ignore[no-untyped-call]
                    pb.ListTopicsRequest(), timeout=10))
                assert code[:2] == ("PERMISSION_DENIED", "TOPIC_AUTHORIZATION_FAILED")
    finally:
        cluster.stop()


def _tls_kwargs(tls: ClientTLS) -> dict[str, str | None]:
    return {"tls_ca": str(tls.ca), "tls_cert": str(tls.cert), "tls_key": str(tls.key)}
