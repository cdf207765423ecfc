"""ConsumerGroup resources through `odradek operator` against kmock and a real broker:
lag in status, a reset applied once per requestId, and resets applied to a group with a
live member, which stays in the group and reads on from the new offsets: after a reset
to earliest it reads every record again, once each, in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest

from odradek.client import Admin, Consumer, Producer
from tests.brokers import BrokerProcess, commit_group_offsets
from tests.kube import (
    NAMESPACE,
    OdradekKube,
    OperatorProcess,
    apply,
    eventually,
    manifest,
    patch_spec,
    stored,
    wait_ready,
)
from tests.operator_fixtures import WAIT_S, running_operator

pytestmark = [pytest.mark.slow, pytest.mark.kmock(cls=OdradekKube)]

RECORDS = 10


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path_factory.mktemp("op-groups") / "b")
    try:
        yield proc.start()
    finally:
        proc.stop()


@pytest.fixture
async def operator(kmock: kmock.KubernetesEmulator, broker: BrokerProcess,
                   tmp_path: Path) -> AsyncIterator[OperatorProcess]:
    # Several namespaces (the second has no resources).
    async with running_operator(kmock, tmp_path, broker.address,
                                namespaces=[NAMESPACE, "elsewhere"]) as proc:
        yield proc


async def committed(admin: Admin, group: str) -> dict[tuple[str, int], int]:
    return await admin.group_offsets(group)


async def test_group_status_and_resets(kmock: kmock.KubernetesEmulator,
                                       operator: OperatorProcess, broker: BrokerProcess) -> None:
    async with Admin(broker.address) as admin, Producer(broker.address) as producer:
        await admin.create_topic("events", 1, 1)
        for i in range(RECORDS):
            await producer.send_and_wait("events", f"v{i}".encode())
        await asyncio.to_thread(commit_group_offsets, [broker], "billing", "events",
                                {0: RECORDS})
        await apply(kmock, manifest("ConsumerGroup", "billing", {
            "topics": ["events"], "reset": {"requestId": "r1", "to": "earliest"}}))
        obj = await wait_ready(kmock, operator, "ConsumerGroup", "billing")
        assert obj["status"]["lastReset"]["requestId"] == "r1"
        assert obj["status"]["lastReset"]["outcome"] == "Applied"
        assert obj["status"]["lastReset"]["changes"] == 1
        assert await committed(admin, "billing") == {("events", 0): 0}

        # Offsets have gaps (Raft's control batches take some): the lag is the log end's.
        end = (await admin.list_offsets("events", 0)).offset

        async def lagging() -> dict[str, Any] | None:
            o = stored(kmock, "ConsumerGroup", "billing")
            return o if (o or {}).get("status", {}).get("lag") == end else None

        obj = await eventually(lagging, WAIT_S, f"lag of {end} in status", operator.log)
        assert end >= RECORDS
        assert obj["status"]["partitions"][0] == {
            "topic": "events", "partition": 0, "committedOffset": 0, "logEndOffset": end,
            "lag": end}
        assert obj["status"]["state"] == "EMPTY"

        # The same requestId is never applied again (a commit moved the offset meanwhile).
        await asyncio.to_thread(commit_group_offsets, [broker], "billing", "events", {0: 4})

        async def resynced() -> dict[str, Any] | None:
            # The status shows the new commit: the operator looked at the group again
            # since, with the same reset in its spec.
            o = stored(kmock, "ConsumerGroup", "billing")
            parts = (o or {}).get("status", {}).get("partitions") or [{}]
            return o if parts[0].get("committedOffset") == 4 else None

        await eventually(resynced, WAIT_S, "the new commit in status", operator.log)
        assert await committed(admin, "billing") == {("events", 0): 4}

        # A live member: the coordinator takes its partition, moves the offset and gives
        # the partition back; the member reads on from the new offset.
        consumer = Consumer(broker.address, group_id="billing", enable_auto_commit=False)
        consumer.subscribe(["events"])
        seen: list[bytes] = []
        polling = asyncio.create_task(_poll_forever(consumer, seen))
        try:
            async def member() -> bool:
                return len((await admin.describe_group("billing")).members) == 1

            await eventually(member, WAIT_S, "a live member", operator.log)
            await patch_spec(kmock, "ConsumerGroup", "billing", {
                "reset": {"requestId": "r2", "to": "latest"}})
            async def reset_done() -> dict[str, Any] | None:
                o = stored(kmock, "ConsumerGroup", "billing")
                last = (o or {}).get("status", {}).get("lastReset", {})
                return o if last.get("requestId") == "r2" else None

            obj = await eventually(reset_done, WAIT_S, "reset r2", operator.log)
            assert obj["status"]["lastReset"] | {"time": ""} == {
                "requestId": "r2", "outcome": "Applied", "changes": 1, "time": "",
                "message": "1 committed offsets moved"}
            assert await committed(admin, "billing") == {("events", 0): end}
            assert await member()  # still in the group

            # Back to the start under the live member: it reads everything again, once.
            mark = len(seen)
            await patch_spec(kmock, "ConsumerGroup", "billing", {
                "reset": {"requestId": "r3", "to": "earliest"}})

            async def reread() -> bool:
                return len(seen) - mark >= RECORDS

            await eventually(reread, WAIT_S, "the member reading from the start again",
                             operator.log)
            assert seen[mark:] == [f"v{i}".encode() for i in range(RECORDS)]
            async def reported() -> bool:
                o = stored(kmock, "ConsumerGroup", "billing") or {}
                last = o.get("status", {}).get("lastReset", {})
                return (last.get("requestId"), last.get("outcome")) == ("r3", "Applied")

            await eventually(reported, WAIT_S, "reset r3 in status", operator.log)
            assert await member()
            assert len(seen) - mark == RECORDS  # nothing read twice since
        finally:
            polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await polling
            await consumer.close()


async def _poll_forever(consumer: Consumer, seen: list[bytes]) -> None:
    while True:
        seen.extend(r.value for r in await consumer.poll(timeout_ms=200))
