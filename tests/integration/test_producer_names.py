"""Named producers are bounded and authorized (issue 11, item 5), through the real port:
WRITE on the name (an ACL resource, as Kafka's transactional id) to use it, so a principal
without it cannot fence another's producer; at most --max-producer-names of them; names
idle for --producer-name-expiration-ms are forgotten, while one that keeps writing stays."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from odradek.client import Admin
from odradek.client.acls import acl
from odradek.client.errors import from_rpc_error
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from tests.brokers import BrokerProcess, wait_until
from tests.cli import odradek
from tests.integration.test_acl import ADMIN_PASSWORD, login_channel
from tests.integration.test_acl_hosts import secured_broker
from tests.integration.test_idempotence import (
    TOPIC,
    batch,
    create_topic,
    init_producer,
    produce,
)


@pytest.fixture
def bounded(tmp_path: Path) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path / "b", extra_args=[
        "--max-producer-names", "3", "--producer-name-expiration-ms", "2000"])
    try:
        proc.start()
        create_topic(proc.address)
        yield proc
    finally:
        proc.stop()


def _init_error(address: str, name: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        init_producer(address, name)
    return refused.value


def test_names_are_capped_and_idle_ones_expire(bounded: BrokerProcess) -> None:
    address = bounded.address
    busy, epoch = init_producer(address, "busy")
    init_producer(address, "idle-1")
    init_producer(address, "idle-2")
    over = _init_error(address, "extra")
    assert over.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert from_rpc_error(over).reason == "TOO_MANY_PRODUCER_NAMES"
    assert init_producer(address, "idle-1")[1] == 1  # a name it has is not refused
    epoch_busy = epoch
    sequence = 0

    def idle_ones_expired() -> bool:
        nonlocal sequence
        # "busy" keeps writing all along.
        produce(address, batch(busy, epoch_busy, sequence, [b"w%d" % sequence]))
        sequence += 1
        try:
            init_producer(address, "extra")
            return True
        except grpc.RpcError as exc:
            assert from_rpc_error(exc).reason == "TOO_MANY_PRODUCER_NAMES"
            return False

    wait_until(idle_ones_expired, 60, "the idle names to expire", interval=0.2)
    # The writer kept its name: same producer id, next epoch (a new one would be epoch 0).
    assert init_producer(address, "busy") == (busy, epoch_busy + 1)
    assert bounded.serving()


@pytest.fixture
async def secured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BrokerProcess]:
    monkeypatch.setenv("ODRADEK_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
    async with secured_broker(tmp_path / "b", "127.0.0.1") as proc:
        async with Admin(proc.address, username="admin", password=ADMIN_PASSWORD) as admin:
            await admin.create_topic(TOPIC, 1, 1)
            for user in ("alice", "bob"):
                await admin.create_user(user, f"{user}-pw", iterations=4096)
            await admin.create_acls([
                acl("User:alice", "topic", TOPIC, "write"),
                acl("User:bob", "topic", TOPIC, "write"),
                acl("User:alice", "producer_name", "alice-", "write", pattern_type="prefixed"),
            ])
        yield proc


async def _init(address: str, user: str, name: str) -> tuple[int, int]:
    async with login_channel(address, user, f"{user}-pw") as channel:
        reply = await pb_grpc.BrokerStub(channel).InitProducerId(  # type: ignore[no-untyped-call]
            pb.InitProducerIdRequest(producer_name=name), timeout=30)
        return reply.producer_id, reply.producer_epoch


async def test_a_name_needs_write_on_it(secured: BrokerProcess) -> None:
    address = secured.address
    pid, epoch = await _init(address, "alice", "alice-orders")
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await _init(address, "bob", "alice-orders")
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert from_rpc_error(denied.value).reason == "PRODUCER_NAME_AUTHORIZATION_FAILED"
    # Bob fenced nothing: alice's next instance is the very next epoch.
    assert await _init(address, "alice", "alice-orders") == (pid, epoch + 1)
    # Producers without a name need only write on some topic, as before.
    assert (await _init(address, "bob", ""))[1] == 0


async def test_names_are_listed_to_whom_may_describe_them(secured: BrokerProcess,
                                                         tmp_path: Path) -> None:
    address = secured.address
    pid, epoch = await _init(address, "alice", "alice-orders")
    async with Admin(address, username="admin", password=ADMIN_PASSWORD) as admin:
        async with login_channel(address, "admin", ADMIN_PASSWORD) as channel:
            await pb_grpc.BrokerStub(channel).InitProducerId(  # type: ignore[no-untyped-call]
                pb.InitProducerIdRequest(producer_name="shared-1"), timeout=30)
        # Describe only: bob sees these names, and still may not use them.
        await admin.create_acls([acl("User:bob", "producer_name", "shared-", "describe",
                                     pattern_type="prefixed")])
        everything = await admin.list_producer_names()
        assert [n.name for n in everything] == ["alice-orders", "shared-1"]
        assert [n.name for n in await admin.list_producer_names("alice-")] == ["alice-orders"]

    async def names_of(user: str) -> list[tuple[str, int, int, bool]]:
        async with Admin(address, username=user, password=f"{user}-pw") as client:
            return [(n.name, n.producer_id, n.producer_epoch, n.last_used_ms > 0)
                    for n in await client.list_producer_names()]

    # Write on a name implies describe; nothing else shows.
    assert await names_of("alice") == [("alice-orders", pid, epoch, True)]
    assert [name for name, *_ in await names_of("bob")] == ["shared-1"]
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await _init(address, "bob", "shared-1")
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    (tmp_path / "alice.pw").write_text("alice-pw\n")
    shown = odradek("producer", "list", "-b", address, env={
        "ODRADEK_USERNAME": "alice", "ODRADEK_PASSWORD_FILE": str(tmp_path / "alice.pw")})
    assert shown.returncode == 0, shown.stderr
    assert "alice-orders" in shown.stdout and "shared-1" not in shown.stdout
    assert f"alice-orders\t{pid}\t{epoch}\t" in shown.stdout
