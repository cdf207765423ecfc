"""Host ACLs for IPv6 callers (real process on ::1): gRPC reports them percent-encoded
("ipv6:%5B::1%5D:port"); rules name addresses in any spelling and are stored canonical."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from odradek.client import Admin
from odradek.client.acls import acl
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from tests.brokers import BrokerProcess, ipv6_loopback
from tests.integration.test_acl import (  # noqa: F401 (env_password is a fixture)
    ADMIN_PASSWORD,
    env_password,
    login_channel,
    secured_args,
    wait_for_login,
)

pytestmark = pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback (::1) here")


@contextlib.asynccontextmanager
async def secured_broker(data_dir: Path, host: str) -> AsyncIterator[BrokerProcess]:
    """A broker with authorization on, listening on `host`, once the admin logs in."""
    proc = BrokerProcess(data_dir, extra_args=secured_args(), host=host)
    try:
        proc.start()
        await wait_for_login(f"{'[::1]' if ':' in host else host}:{proc.port}", "admin",
                             ADMIN_PASSWORD)
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def broker6(tmp_path: Path, env_password: None) -> AsyncIterator[BrokerProcess]:  # noqa: F811
    async with secured_broker(tmp_path / "b", "::1") as proc:
        yield proc


async def test_host_rules_match_ipv6_callers(broker6: BrokerProcess) -> None:
    async with Admin(broker6.address, username="admin", password=ADMIN_PASSWORD) as admin:
        await admin.create_user("dana", "dana-pw", iterations=4096)
        await admin.create_user("erin", "erin-pw", iterations=4096)
        for topic in ("v6", "v4only"):
            await admin.create_topic(topic, 1, 1)
        await admin.create_acls([
            # Spelled long: stored and matched as "::1".
            acl("User:dana", "topic", "v6", "read", host="0:0:0:0:0:0:0:1"),
            acl("User:erin", "topic", "v4only", "read", host="127.0.0.1"),
        ])
        hosts = {b.host for b in await admin.list_acls()}
        assert "::1" in hosts and "0:0:0:0:0:0:0:1" not in hosts

    async def fetch(user: str, password: str, topic: str) -> str:
        async with login_channel(broker6.address, user, password) as channel:
            try:
                await pb_grpc.BrokerStub(channel).Fetch(  # type: ignore[no-untyped-call]
                    pb.FetchRequest(topic=topic, partition=0, offset=0), timeout=10)
            except grpc.aio.AioRpcError as exc:
                return exc.code().name
        return "OK"

    assert await fetch("dana", "dana-pw", "v6") == "OK"
    assert await fetch("erin", "erin-pw", "v4only") == "PERMISSION_DENIED"  # not from there
