"""The in-sync report loop (odradek/broker/in_sync.py): a full pass takes every partition
this broker leads; the passes between take only the awake groups' partitions, since a
quiet group's in-sync set cannot change while the image and the live brokers stay the
same."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from odradek.broker import in_sync
from odradek.broker.metadata.commands import Command, PartitionsInSync


@dataclass
class FakeNode:
    term: int = 3

    def is_leader(self) -> bool:
        return True


@dataclass
class FakePartition:
    topic: str
    index: int
    node: FakeNode = field(default_factory=FakeNode)
    closed: bool = False

    def in_sync_replicas(self) -> list[int]:
        return [0, 1]  # the image says (0, 1, 2): always a change to report


class FakeImage:
    brokers = (0, 1, 2)

    def partition(self, topic: str, index: int) -> Any:
        return SimpleNamespace(leader=0, leader_term=3, in_sync=(0, 1, 2))


class FakeCluster:
    id = 0

    def __init__(self) -> None:
        self.image = FakeImage()
        self.awake = FakePartition("t", 0)
        self.quiet = FakePartition("t", 1)
        self.partitions = {("t", 0): self.awake, ("t", 1): self.quiet}
        self.proposed: list[PartitionsInSync] = []
        self.two = asyncio.Event()

    def broker_alive(self, broker: int) -> bool:
        return True

    def awake_partitions(self) -> list[Any]:
        return [self.awake]

    async def propose(self, command: Command, timeout_s: float = 10) -> int:
        assert isinstance(command, PartitionsInSync)
        self.proposed.append(command)  # never applied: the change stays to report
        if len(self.proposed) >= 2:
            self.two.set()
        return len(self.proposed)


async def test_passes_between_full_ones_take_only_awake_partitions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(in_sync, "REPORT_INTERVAL_S", 0.001)
    monkeypatch.setattr(in_sync, "FULL_PASS_S", 3600.0)
    cluster = FakeCluster()
    task = asyncio.create_task(in_sync.report_loop(cluster, {}))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(cluster.two.wait(), 10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    first, second = cluster.proposed[:2]
    assert sorted(r.partition for r in first.reports) == [0, 1]  # the full pass
    assert [r.partition for r in second.reports] == [0]  # the awake one only
