"""What the operator's integration tests share: the operator process against kmock
(CRDs declared, alive before the test, always stopped), a running acks=quorum producer
whose acknowledged records must all be read back, and a resource's conditions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import kmock

from odradek.client import Consumer, OdradekError, Producer, TopicPartition
from tests.kube import NAMESPACE, OperatorProcess, declare_crds, eventually, stored

WAIT_S = 40.0


@contextlib.asynccontextmanager
async def running_operator(kube: kmock.KubernetesEmulator, workdir: Path, bootstrap: str,
                           env: dict[str, str] | None = None,
                           namespaces: Sequence[str] | None = (NAMESPACE,)
                           ) -> AsyncIterator[OperatorProcess]:
    """namespaces: the operator's --namespace flags (None: all namespaces)."""
    declare_crds(kube)
    proc = OperatorProcess(workdir, str(kube.url).rstrip("/"), bootstrap, env,
                           namespaces=None if namespaces is None else list(namespaces))
    try:
        proc.start()
        await proc.wait_alive()
        yield proc
    finally:
        proc.stop()


def conditions(kube: kmock.KubernetesEmulator, kind: str, name: str) -> dict[str, Any]:
    """A resource's conditions by type (empty when it has none yet)."""
    obj = stored(kube, kind, name) or {}
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


class RunningProducer:
    """acks=quorum writes in the background; what was acknowledged must all be read."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.acked: set[bytes] = set()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with Producer(self.bootstrap, acks="quorum") as producer:
            for i in range(50_000):  # bounded; stopped long before
                if self.stop.is_set():
                    return
                value = f"r{i}".encode()
                try:
                    await producer.send_and_wait(self.topic, value, key=value)
                    self.acked.add(value)
                except OdradekError:
                    await asyncio.sleep(0.05)  # not acknowledged: not counted
                await asyncio.sleep(0.005)

    async def finish(self) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 30)

    async def read_all(self, partitions: int) -> set[bytes]:
        seen: set[bytes] = set()
        consumer = Consumer(self.bootstrap)
        try:
            tps = [TopicPartition(self.topic, p) for p in range(partitions)]
            consumer.assign(tps)
            for tp in tps:
                await consumer.seek_to_beginning(tp)

            async def everything() -> bool:
                seen.update(r.value for r in await consumer.poll(timeout_ms=500))
                return self.acked <= seen

            await eventually(everything, 30, "every acknowledged record read")
        finally:
            await consumer.close()
        return seen


@contextlib.asynccontextmanager
async def producing(bootstrap: str, topic: str) -> AsyncIterator[RunningProducer]:
    """A RunningProducer started now and cancelled at the end if the test did not finish it."""
    producer = RunningProducer(bootstrap, topic)
    producer.task = asyncio.create_task(producer._run())
    try:
        yield producer
    finally:
        if not producer.task.done():
            producer.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer.task
