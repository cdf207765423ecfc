"""Caps per peer address on what unauthenticated callers hold (issue 11, item 2), through
the real gRPC port: streams opened without credentials, SCRAM exchanges in progress. One
address at its cap is refused with RESOURCE_EXHAUSTED; others (and authenticated callers)
go on; a closed stream gives its slot back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from odradek.broker.auth.peer_limits import MAX_ANONYMOUS_STREAMS_PER_PEER, MAX_EXCHANGES_PER_PEER
from odradek.client import Admin
from odradek.client.acls import acl
from odradek.records import encode_batch
from odradek.security import scram
from odradek.security.tls import open_channel
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from odradek.v1 import security_pb2 as spb
from odradek.v1 import security_pb2_grpc as spb_grpc
from tests.brokers import BrokerProcess, ipv6_loopback
from tests.integration.test_acl import (  # noqa: F401 (env_password is a fixture)
    ADMIN_PASSWORD,
    env_password,
    login_channel,
)
from tests.integration.test_acl_hosts import secured_broker

TOPIC = "open"

pytestmark = pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback (::1) here")


@pytest.fixture
async def broker_any(tmp_path: Path, env_password: None) -> AsyncIterator[BrokerProcess]:  # noqa: F811
    # On every address, IPv4 and IPv6: callers on ::1 are another peer than on 127.0.0.1.
    async with secured_broker(tmp_path / "b", "::") as proc:
        async with Admin(f"127.0.0.1:{proc.port}", username="admin",
                         password=ADMIN_PASSWORD) as admin:
            await admin.create_topic(TOPIC, 1, 1)
            await admin.create_acls([acl("User:ANONYMOUS", "topic", TOPIC, "read")])
        yield proc


async def _subscribe(channel: grpc.aio.Channel) -> grpc.aio.UnaryStreamCall:
    """A Subscribe, once it has answered (the topic holds one record)."""
    stream = pb_grpc.BrokerStub(channel).Subscribe(  # type: ignore[no-untyped-call]
        pb.SubscribeRequest(topic=TOPIC, partition=0, offset=0, max_bytes=1 << 20), timeout=120)
    await stream.read()
    return stream


async def test_unauthenticated_streams_are_capped_per_address(
        broker_any: BrokerProcess) -> None:
    here, there = f"127.0.0.1:{broker_any.port}", f"[::1]:{broker_any.port}"
    async with login_channel(here, "admin", ADMIN_PASSWORD) as admin, \
            open_channel(here, None) as anonymous, open_channel(there, None) as other:
        await pb_grpc.BrokerStub(admin).Produce(pb.ProduceRequest(  # type: ignore[no-untyped-call]
            topic=TOPIC, records=encode_batch([(1, b"k", b"v")])), timeout=10)
        streams = [await _subscribe(anonymous) for _ in range(MAX_ANONYMOUS_STREAMS_PER_PEER)]
        try:
            with pytest.raises(grpc.aio.AioRpcError) as over:
                await _subscribe(anonymous)
            assert over.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "unauthenticated streams open" in (over.value.details() or "")
            # An authenticated caller on the same address is not counted; another address
            # has slots of its own.
            (await _subscribe(admin)).cancel()
            (await _subscribe(other)).cancel()
            # A closed stream gives its slot back.
            streams.pop().cancel()
            deadline = time.monotonic() + 20
            while True:
                try:
                    streams.append(await _subscribe(anonymous))
                    break
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    assert time.monotonic() < deadline, "no slot given back by a closed stream"
                    await asyncio.sleep(0.05)
        finally:
            for stream in streams:
                stream.cancel()
    assert broker_any.serving()


async def test_scram_exchanges_are_capped_per_address(broker_any: BrokerProcess) -> None:
    async with open_channel(f"127.0.0.1:{broker_any.port}", None) as anonymous:
        security = spb_grpc.SecurityStub(anonymous)  # type: ignore[no-untyped-call]

        async def start() -> None:
            client = scram.ClientExchange("mallory", "guess")
            await security.ScramStart(spb.ScramStartRequest(
                mechanism=scram.MECHANISM, client_first_message=client.first()), timeout=10)

        for _ in range(MAX_EXCHANGES_PER_PEER):
            await start()
        with pytest.raises(grpc.aio.AioRpcError) as over:
            await start()
        assert over.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "SCRAM exchanges open" in (over.value.details() or "")
    # Logins from other addresses go on while this one waits for its exchanges to expire.
    async with login_channel(f"[::1]:{broker_any.port}", "admin", ADMIN_PASSWORD) as admin:
        listed = await spb_grpc.SecurityStub(admin).ListUsers(  # type: ignore[no-untyped-call]
            spb.ListUsersRequest(), timeout=10)
        assert [u.name for u in listed.users] == ["admin"]
