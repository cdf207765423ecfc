"""Unauthenticated input has small limits, checked before any work (real process): an
oversized SCRAM message is refused at once with a clear status, is not written into the
log, and logins of other users go on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from odradek.security.tls import open_channel
from odradek.v1 import security_pb2 as spb
from odradek.v1 import security_pb2_grpc as spb_grpc
from tests.brokers import BrokerProcess
from tests.integration.test_acl import (  # noqa: F401 (env_password is a fixture)
    ADMIN_PASSWORD,
    env_password,
    secured_args,
    wait_for_login,
)

# Over the field cap, under the method's request limit (tests/integration/test_request_limits.py).
HUGE = "n=" + "u" * 10_000 + ",r=nonce"


@pytest.fixture
async def secured1(tmp_path: Path, env_password: None) -> AsyncIterator[BrokerProcess]:  # noqa: F811
    proc = BrokerProcess(tmp_path / "b", extra_args=secured_args())
    try:
        proc.start()
        await wait_for_login(proc.address, "admin", ADMIN_PASSWORD)
        yield proc
    finally:
        proc.stop()


async def test_oversized_scram_fields_are_refused_before_parsing(secured1: BrokerProcess) -> None:
    async with open_channel(secured1.address, None) as channel:
        stub = spb_grpc.SecurityStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as start:
            await stub.ScramStart(spb.ScramStartRequest(
                mechanism="SCRAM-SHA-512", client_first_message="n,," + HUGE), timeout=30)
        assert start.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "client_first_message is" in (start.value.details() or "")
        assert "at most 4096" in (start.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as finish:
            await stub.ScramFinish(spb.ScramFinishRequest(
                exchange_id="x" * 10_000, client_final_message="c=biws"), timeout=30)
        assert finish.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "exchange_id is 10000 characters long" in (finish.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as mechanism:
            await stub.ScramStart(spb.ScramStartRequest(
                mechanism="M" * 10_000, client_first_message="n,,n=a,r=b"), timeout=30)
        assert len(mechanism.value.details() or "") < 1000  # the message quotes it clipped
    await wait_for_login(secured1.address, "admin", ADMIN_PASSWORD)  # others still log in
    assert secured1.serving()
    assert "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu" not in secured1.log()
