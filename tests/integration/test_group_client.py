"""The group client against one real broker process: pattern subscriptions, cooperative
handover through commits in on_revoked, a member removed for not polling is fenced and
rejoins, strategy mismatches, and bad requests answered with clear statuses."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import pytest

from odradek.client import Admin, Consumer, Producer
from odradek.client.errors import CommitFailedError, OdradekError, from_rpc_error
from odradek.v1 import groups_pb2 as gpb
from odradek.v1 import groups_pb2_grpc as gpb_grpc
from tests.brokers import BrokerProcess, wait_until
from tests.cli import ODRADEK, clean_env, odradek


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path_factory.mktemp("group-client") / "b0").start()
    try:
        yield proc
    finally:
        proc.stop()


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def create(bootstrap: str, topic: str, partitions: int) -> None:
    async with Admin(bootstrap) as admin:
        await admin.create_topic(topic, partitions)


async def _produce(bootstrap: str, topic: str, count: int) -> None:
    async with Producer(bootstrap) as producer:
        futures = [await producer.send(topic, f"v{i}", key=f"k{i}") for i in range(count)]
        await asyncio.gather(*futures)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def test_pattern_subscription_follows_new_topics(broker: BrokerProcess) -> None:
    async def go() -> None:
        async with Admin(broker.address) as admin:
            await admin.create_topic("evt-a", 2)
            async with Consumer(broker.address, group_id="pattern") as c:
                c.subscribe(re.compile(r"evt-.*"))

                async def has(topics: set[str]) -> bool:
                    await c.poll(50)
                    return {tp.topic for tp in c.assignment()} == topics

                await until("evt-a assigned", lambda: has({"evt-a"}))
                await admin.create_topic("evt-b", 1)
                await admin.create_topic("other", 1)
                await until("evt-b assigned", lambda: has({"evt-a", "evt-b"}))

    run(go())


def test_revoked_partitions_are_committed_and_the_new_owner_starts_there(
        broker: BrokerProcess) -> None:
    async def go() -> None:
        await create(broker.address, "handover", 4)
        await _produce(broker.address, "handover", 200)
        seen: list[tuple[str, int, int]] = []
        revoked: list[object] = []

        async def on_revoked(tps: list[object]) -> None:
            revoked.extend(tps)
            await a.commit()  # everything handed out so far counts as processed

        a = Consumer(broker.address, group_id="handover", auto_offset_reset="earliest",
                     enable_auto_commit=False)
        b = Consumer(broker.address, group_id="handover", auto_offset_reset="earliest",
                     enable_auto_commit=False)
        try:
            a.subscribe(["handover"], on_revoked=on_revoked)

            async def a_read_all() -> bool:
                seen.extend((r.value or b"").decode() and ("a", r.partition, r.offset)
                            for r in await a.poll(50))
                return len(seen) >= 200

            await until("a reads everything", a_read_all)
            b.subscribe(["handover"])

            async def split() -> bool:
                for r in await b.poll(20):
                    seen.append(("b", r.partition, r.offset))
                await a.poll(20)
                return len(a.assignment()) == 2 and len(b.assignment()) == 2

            await until("the partitions split", split)
            assert len(revoked) == 2
            for _ in range(10):
                seen.extend(("b", r.partition, r.offset) for r in await b.poll(50))
            assert not [s for s in seen if s[0] == "b"], "b re-read records a had committed"
            committed = await b.committed([("handover", p) for p in range(4)])
            assert set(committed) == {("handover", p) for p in range(4)}
        finally:
            await b.close()
            await a.close()

    run(go())


def test_a_member_that_stops_polling_is_removed_fenced_and_rejoins(
        broker: BrokerProcess) -> None:
    async def go() -> None:
        await create(broker.address, "slow", 2)
        lost: list[object] = []
        async with Consumer(broker.address, group_id="slow", session_timeout_ms=2000,
                            max_poll_interval_ms=1500, enable_auto_commit=False) as c:
            c.subscribe(["slow"], on_lost=lost.extend)

            async def joined() -> bool:
                await c.poll(50)
                return len(c.assignment()) == 2

            await until("assigned", joined)
            first_member = c.member_id
            async with Admin(broker.address) as admin:
                async def dropped() -> bool:  # past max_poll_interval_ms without a poll
                    return not (await admin.describe_group("slow")).members

                await until("the member dropped for not polling", dropped)
            with pytest.raises(CommitFailedError):
                await c.commit({("slow", 0): 1})

            async def back() -> bool:
                await c.poll(50)
                return len(c.assignment()) == 2 and c.member_id != first_member

            await until("rejoined", back)
            assert sorted(lost) == [("slow", 0), ("slow", 1)]
            await c.commit({("slow", 0): 0})

    run(go())


def test_a_member_with_another_strategy_is_refused(broker: BrokerProcess) -> None:
    async def go() -> None:
        await create(broker.address, "strategies", 1)
        async with Consumer(broker.address, group_id="strategies") as first, \
                Consumer(broker.address, group_id="strategies",
                         assignment_strategy="range") as second:
            first.subscribe(["strategies"])
            second.subscribe(["strategies"])

            async def first_in() -> bool:
                await first.poll(50)
                return bool(first.assignment())

            await until("first member assigned", first_in)
            with pytest.raises(OdradekError) as info:
                await until("second refused", lambda: second.poll(50))  # type: ignore[arg-type,return-value]
            assert info.value.reason == "INCONSISTENT_GROUP_PROTOCOL"

    run(go())


@pytest.mark.parametrize("call,reason", [
    (lambda s: s.FindCoordinator(gpb.FindCoordinatorRequest(group_id=""), timeout=10),
     "INVALID_GROUP_ID"),
    (lambda s: s.CommitOffsets(gpb.CommitOffsetsRequest(
        group_id="bad", offsets=[gpb.OffsetCommit(topic="t", partition=0, offset=-5)]),
        timeout=10), "INVALID_REQUEST"),
    (lambda s: s.DeleteGroup(gpb.DeleteGroupRequest(group_id="never-existed"), timeout=10),
     "GROUP_ID_NOT_FOUND"),
    (lambda s: s.ResetOffsets(gpb.ResetOffsetsRequest(group_id="bad"), timeout=10),
     "INVALID_REQUEST"),
    (lambda s: s.ResetOffsets(gpb.ResetOffsetsRequest(
        group_id="bad", to_earliest=True, partitions=[gpb.TopicPartitions(topic="nope")]),
        timeout=10), "UNKNOWN_TOPIC_OR_PARTITION"),
    (lambda s: list(s.Membership(iter([gpb.MemberRequest(heartbeat=gpb.Heartbeat())]),
                                 timeout=10)), "INVALID_REQUEST"),
    (lambda s: list(s.Membership(iter([gpb.MemberRequest(join=gpb.JoinGroup(
        group_id="bad", topics=["t"], session_timeout_ms=10))]), timeout=10)),
     "INVALID_SESSION_TIMEOUT"),
    (lambda s: list(s.Membership(iter([gpb.MemberRequest(join=gpb.JoinGroup(
        group_id="bad", topics=[]))]), timeout=10)), "INVALID_REQUEST"),
])
def test_bad_requests_get_a_reason(broker: BrokerProcess, call: Callable[[object], object],
                                   reason: str, tmp_path: Path) -> None:
    with grpc.insecure_channel(broker.address) as channel:
        stub = gpb_grpc.GroupsStub(channel)
        stub.FindCoordinator(gpb.FindCoordinatorRequest(group_id="bad"), timeout=30)
        with pytest.raises(grpc.RpcError) as info:
            call(stub)
        assert from_rpc_error(info.value).reason == reason


def test_groups_service_is_reflected_and_has_health(broker: BrokerProcess) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(broker.address) as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert "odradek.v1.Groups" in services
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="odradek.v1.Groups"), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_cli_describe_and_bad_flags(broker: BrokerProcess) -> None:
    import subprocess
    import sys

    async def go() -> None:
        await create(broker.address, "cli-topic", 2)
        await _produce(broker.address, "cli-topic", 10)
        async with Consumer(broker.address, group_id="cli-group",
                            auto_offset_reset="earliest") as c:
            c.subscribe(["cli-topic"])

            async def read_all() -> bool:
                await c.poll(50)
                return all(st.position == st.high_watermark for st in c._states.values()) \
                    and len(c.assignment()) == 2
            await until("caught up", read_all)
            await c.commit()

    run(go())
    cli = [sys.executable, "-m", "odradek.cli.main"]
    out = subprocess.run([*cli, "group", "describe", "cli-group", "-b", broker.address],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("cli-topic")]
    assert [(r[1], r[4]) for r in rows] == [("0", "0"), ("1", "0")]  # partition, lag
    bad = subprocess.run([*cli, "consume", "cli-topic", "--group", "g", "--partition", "0",
                          "-b", broker.address], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "--group reads the partitions" in bad.stderr
    missing = subprocess.run([*cli, "group", "describe", "no-such-group", "-b",
                              broker.address], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "GROUP_ID_NOT_FOUND" in missing.stderr


def test_a_membership_stream_that_says_nothing_is_closed(broker: BrokerProcess) -> None:
    """An open stream holds a slot on the broker: without a join in time it is closed."""
    async def go() -> None:
        async with grpc.aio.insecure_channel(broker.address) as channel:
            stub = gpb_grpc.GroupsStub(channel)  # type: ignore[no-untyped-call]
            silent: asyncio.Queue[gpb.MemberRequest] = asyncio.Queue()

            async def nothing() -> AsyncIterator[gpb.MemberRequest]:
                while True:
                    yield await silent.get()

            call = stub.Membership(nothing())
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _ in call:
                    pass
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "must start with a join within 10s" in (info.value.details() or "")

    run(go())


def test_consuming_a_missing_topic_in_a_group_is_an_error(broker: BrokerProcess) -> None:
    """A group waits for its topics to appear: a mistyped name used to wait and exit 0."""
    out = odradek("consume", "no-such-topic", "--group", "g", "-b", broker.address,
                  "--timeout-ms", "60000")
    assert (out.returncode, out.stdout, out.stderr) == (
        1, "", "error: topic 'no-such-topic' does not exist (UNKNOWN_TOPIC_OR_PARTITION)\n")


def test_close_calls_on_revoked_with_the_owned_partitions(broker: BrokerProcess) -> None:
    revoked: list[list[tuple[str, int]]] = []

    async def go() -> None:
        await create(broker.address, "closing", 2)
        c = Consumer(broker.address, group_id="closing-g")
        c.subscribe(["closing"], on_revoked=lambda tps: revoked.append(
            [(tp.topic, tp.partition) for tp in tps]))

        async def assigned() -> bool:
            await c.poll(50)
            return len(c.assignment()) == 2

        try:
            await until("both partitions assigned", assigned)
        finally:
            await c.close()

    run(go())
    assert revoked == [[("closing", 0), ("closing", 1)]]


def test_cli_consumer_stopped_by_sigterm_leaves_its_group(broker: BrokerProcess) -> None:
    """Stopped by kill, docker stop or Kubernetes, a member used to keep its partitions
    until the session timeout (a minute here)."""
    run(create(broker.address, "terminated", 1))
    boot = ["--bootstrap", broker.address]
    proc = subprocess.Popen([*ODRADEK, "consume", "terminated", "--group", "term-g",
                             "--session-timeout-ms", "60000", *boot],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())

    def members() -> list[dict[str, object]]:
        described = odradek("group", "describe", "term-g", "--json", *boot)
        if described.returncode != 0:
            return []
        return list(json.loads(described.stdout)["members"])

    try:
        wait_until(lambda: any(m["assigned"] for m in members()), 30, "the member's assignment")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert (proc.returncode, out, err) == (143, b"", b"")
    # Gone at once: no wait for the session timeout.
    assert members() == []
