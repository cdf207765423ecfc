"""A broker stopped by SIGTERM (a pod deleted in a rolling restart) first hands the
leadership of its partitions to live, caught-up followers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from odradek.client import Admin
from tests.brokers import ClusterProcesses
from tests.kube import eventually


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcesses]:
    procs = ClusterProcesses(tmp_path).start()
    try:
        yield procs
    finally:
        procs.stop()


async def test_sigterm_hands_leadership_off(cluster: ClusterProcesses) -> None:
    async with Admin(cluster.bootstrap) as admin:
        await admin.create_topic("handoff", 6, 3)

        async def leads() -> int:
            md = await admin.metadata(["handoff"])
            parts = [p for t in md.topics for p in t.partitions]
            settled = len(parts) == 6 and all(
                p.leader >= 0 and set(p.in_sync_replicas) == set(p.replicas) for p in parts)
            return sum(p.leader == 2 for p in parts) if settled else 0

        # The preferred leaders come back to each broker, broker 2 among them.
        await eventually(leads, 60, "broker 2 leading partitions in sync")
    broker = cluster.brokers[2]
    assert broker.stop() == 0
    found = re.search(r"handed leadership of (\d+)/(\d+) partitions off", broker.log())
    assert found, broker.log()[-3000:]
    handed, led = map(int, found.groups())
    assert led >= 1 and handed == led
