"""A property-based fuzzer over every client and broker RPC (issue 11), through the real
port of a broker with authorization on: messages with random, long and out-of-range
fields (built from the proto descriptors), and bytes that are no message at all, sent as
an anonymous caller and as a low-privilege user. Every answer is a clear status (never
UNKNOWN or INTERNAL, always with a message), the broker stays SERVING, its memory stays
bounded, and nothing stored (topics, configs, users, ACLs, records, groups) changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odradek.client.acls import acl, binding_pb
from odradek.records import encode_batch
from odradek.security import scram
from odradek.v1 import cluster_pb2, groups_pb2, odradek_pb2, raft_pb2, security_pb2
from odradek.v1 import groups_pb2_grpc as gpb_grpc
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from odradek.v1 import security_pb2 as spb
from odradek.v1 import security_pb2_grpc as spb_grpc
from tests.brokers import BrokerProcess
from tests.integration.test_acl import ADMIN_PASSWORD, secured_args, wait_for_login

TOPIC, GROUP = "t", "g"
EVE_PASSWORD = "eve-pw"
BAD_CODES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
             grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.DATA_LOSS}
METHODS: list[MethodDescriptor] = [
    method for module in (odradek_pb2, security_pb2, groups_pb2, cluster_pb2, raft_pb2)
    for service in module.DESCRIPTOR.services_by_name.values() for method in service.methods]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- messages from descriptors ----------------------------------------------------------
_INT_RANGES = {FieldDescriptor.TYPE_INT32: 31, FieldDescriptor.TYPE_SINT32: 31,
               FieldDescriptor.TYPE_SFIXED32: 31, FieldDescriptor.TYPE_INT64: 63,
               FieldDescriptor.TYPE_SINT64: 63, FieldDescriptor.TYPE_SFIXED64: 63}
_UINT_RANGES = {FieldDescriptor.TYPE_UINT32: 32, FieldDescriptor.TYPE_FIXED32: 32,
                FieldDescriptor.TYPE_UINT64: 64, FieldDescriptor.TYPE_FIXED64: 64}
_WORDS = ["", TOPIC, GROUP, "__consumer_offsets", "*", "odradek-cluster", "admin", "eve",
          "SCRAM-SHA-512", "n,,n=admin,r=abc", "c=biws,r=abc,p=AAAA", "User:admin"]


def _scalar(f: FieldDescriptor) -> st.SearchStrategy[Any]:
    if f.type in _INT_RANGES:
        bits = _INT_RANGES[f.type]
        return st.one_of(st.integers(-3, 100), st.integers(-(1 << bits), (1 << bits) - 1))
    if f.type in _UINT_RANGES:
        return st.integers(0, (1 << _UINT_RANGES[f.type]) - 1)
    if f.type == FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, 40)  # proto3 enums are open: unknown numbers go through
    if f.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32)
    if f.type == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.sampled_from(_WORDS), st.text(max_size=40),
                         st.text(min_size=3000, max_size=5000, alphabet="xé\u0000\n"))
    return st.one_of(st.binary(max_size=200),
                     st.just(encode_batch([(1, b"k", b"v")])),
                     st.binary(min_size=5000, max_size=5000))


def _message(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    cls = message_factory.GetMessageClass(desc)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for f in desc.fields:
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 2:
                continue
            if f.message_type.GetOptions().map_entry:
                key, value = f.message_type.fields_by_name["key"], \
                    f.message_type.fields_by_name["value"]
                fields[f.name] = st.dictionaries(_scalar(key), _scalar(value), max_size=3)
                continue
            one = _message(f.message_type, depth + 1)
        else:
            one = _scalar(f)
        fields[f.name] = st.lists(one, max_size=3) \
            if f.is_repeated else one

    def build(values: dict[str, Any]) -> Any:
        message = cls()
        for name, value in values.items():
            field = desc.fields_by_name[name]
            if isinstance(value, dict):
                getattr(message, name).update(value)
            elif field.is_repeated:
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    getattr(message, name).extend(value)
                else:
                    getattr(message, name).extend(value)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                getattr(message, name).CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return st.fixed_dictionaries({}, optional=fields).map(build)  # type: ignore[arg-type]


@st.composite
def calls(draw: Callable[..., Any]) -> tuple[MethodDescriptor, bytes]:
    method = draw(st.sampled_from(METHODS))
    if draw(st.integers(0, 9)) == 0:
        return method, draw(st.binary(max_size=300))  # not a message at all, most likely
    return method, draw(_message(method.input_type)).SerializeToString()


# --- the broker -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    mp = pytest.MonkeyPatch()
    mp.setenv("ODRADEK_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
    proc = BrokerProcess(tmp_path_factory.mktemp("fuzz") / "b", extra_args=secured_args())
    try:
        proc.start()
        asyncio.run(wait_for_login(proc.address, "admin", ADMIN_PASSWORD))
        with _login(proc, "admin", ADMIN_PASSWORD) as admin:
            pb_grpc.AdminStub(admin).CreateTopic(pb.CreateTopicRequest(  # type: ignore[no-untyped-call]
                name=TOPIC, partitions=1), timeout=30)
            pb_grpc.BrokerStub(admin).Produce(pb.ProduceRequest(  # type: ignore[no-untyped-call]
                topic=TOPIC, records=encode_batch([(1, b"k", b"v")])), timeout=30)
            c = scram.make_credential(EVE_PASSWORD, 4096)
            security = spb_grpc.SecurityStub(admin)  # type: ignore[no-untyped-call]
            security.CreateUser(spb.UpsertUserRequest(name="eve", credential=spb.ScramCredential(
                mechanism=scram.MECHANISM, salt=c.salt, iterations=c.iterations,
                stored_key=c.stored_key, server_key=c.server_key)), timeout=30)
            security.CreateAcls(spb.CreateAclsRequest(acls=[
                binding_pb(acl("User:eve", "topic", TOPIC, "read")),
                binding_pb(acl("User:eve", "group", GROUP, "describe"))]), timeout=30)
        yield proc
    finally:
        proc.stop()
        mp.undo()


class _Login:
    """A channel whose calls carry a session token of `user`."""

    def __init__(self, proc: BrokerProcess, user: str, password: str) -> None:
        self.channel = grpc.insecure_channel(proc.address)
        security = spb_grpc.SecurityStub(self.channel)  # type: ignore[no-untyped-call]
        client = scram.ClientExchange(user, password)
        start = security.ScramStart(spb.ScramStartRequest(
            mechanism=scram.MECHANISM, client_first_message=client.first()), timeout=30)
        finish = security.ScramFinish(spb.ScramFinishRequest(
            exchange_id=start.exchange_id,
            client_final_message=client.final(start.server_first_message)), timeout=30)
        self.metadata = (("authorization", f"Bearer {finish.session_token}"),)

    def __enter__(self) -> grpc.Channel:
        return self.channel

    def __exit__(self, *exc: object) -> None:
        self.channel.close()


def _login(proc: BrokerProcess, user: str, password: str) -> Any:
    login = _Login(proc, user, password)

    class _Authenticated(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            return continuation(details._replace(metadata=login.metadata), request)

    login.channel = grpc.intercept_channel(login.channel, _Authenticated())
    return login


def _stored(proc: BrokerProcess) -> tuple[Any, ...]:
    with _login(proc, "admin", ADMIN_PASSWORD) as admin:
        broker, topics = pb_grpc.BrokerStub(admin), pb_grpc.AdminStub(admin)  # type: ignore[no-untyped-call]
        security = spb_grpc.SecurityStub(admin)  # type: ignore[no-untyped-call]
        groups = gpb_grpc.GroupsStub(admin)  # type: ignore[no-untyped-call]
        listed = topics.ListTopics(pb.ListTopicsRequest(include_internal=True), timeout=30)
        described = [topics.DescribeTopic(pb.DescribeTopicRequest(name=t.name),
                                          timeout=30).SerializeToString(deterministic=True)
                     for t in listed.topics]
        end = broker.ListOffsets(pb.ListOffsetsRequest(
            topic=TOPIC, partition=0, spec=pb.OFFSET_SPEC_LATEST), timeout=30).offset
        return (sorted(described),
                security.ListUsers(spb.ListUsersRequest(), timeout=30).SerializeToString(),
                sorted(a.SerializeToString() for a in security.ListAcls(
                    spb.ListAclsRequest(), timeout=30).acls),
                end, groups.ListGroups(groups_pb2.ListGroupsRequest(),
                                       timeout=30).SerializeToString(deterministic=True))


def _call(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...],
          method: MethodDescriptor, body: bytes) -> grpc.StatusCode | None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    kwargs: dict[str, Any] = {"request_serializer": None, "response_deserializer": None}
    try:
        if method.server_streaming:
            make = channel.stream_stream if method.client_streaming else channel.unary_stream
            stream = make(path, **kwargs)(iter([body]) if method.client_streaming else body,
                                          timeout=3, metadata=metadata)
            try:
                next(stream, None)
            finally:
                stream.cancel()
            return None
        if method.client_streaming:
            channel.stream_unary(path, **kwargs)(iter([body]), timeout=3, metadata=metadata)
        else:
            channel.unary_unary(path, **kwargs)(body, timeout=3, metadata=metadata)
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
            return None  # our own timeout or cancel (long polls, streams)
        assert exc.code() not in BAD_CODES, (path, exc.code(), exc.details())
        assert exc.details(), (path, exc.code())
        # The broker's own answer, not gRPC's about trailers too large for the client.
        assert "metadata size exceeds" not in (exc.details() or ""), (path, exc.details())
        return exc.code()  # type: ignore[no-any-return]
    return None


def test_every_rpc_answers_random_input_clearly(target: BrokerProcess) -> None:
    assert target.proc is not None
    before, rss_before = _stored(target), _rss_kib(target.proc.pid)
    eve = _Login(target, "eve", EVE_PASSWORD)
    anonymous = grpc.insecure_channel(target.address)
    seen: dict[str, set[str]] = {}

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(call=calls(), as_eve=st.booleans())
    def fuzz(call: tuple[MethodDescriptor, bytes], as_eve: bool) -> None:
        method, body = call
        channel, metadata = (eve.channel, eve.metadata) if as_eve else (anonymous, ())
        code = _call(channel, metadata, method, body)
        seen.setdefault(method.name, set()).add(code.name if code else "OK/timeout")

    try:
        fuzz()
    finally:
        anonymous.close()
        eve.channel.close()
    assert target.serving()
    assert _stored(target) == before
    assert _rss_kib(target.proc.pid) < rss_before + 300 * 1024
    assert len(seen) >= len(METHODS) // 2, seen
