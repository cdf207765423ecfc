"""Two operator replicas with `--peering` against kmock and a real broker: each draws its
own kopf peering priority, so one works and the other waits (kopf pauses an operator that
sees a live peer of higher priority, and both at a tie: one fixed priority for the
replicas of a Deployment would pause them all). When the working one stops, the other
takes over and reconciles what comes next."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest

from odradek.client import Admin
from tests.brokers import BrokerProcess
from tests.kube import (
    NAMESPACE,
    OdradekKube,
    OperatorProcess,
    apply,
    declare_crds,
    eventually,
    manifest,
    wait_ready,
)
from tests.operator_fixtures import WAIT_S

pytestmark = [pytest.mark.slow, pytest.mark.kmock(cls=OdradekKube)]
PEERING = "odradek"
PEERINGS = "kopf.dev/v1/kopfpeerings"


def declare_peering(kube: kmock.KubernetesEmulator) -> None:
    kube.resources[PEERINGS] = kmock.ResourceInfo(
        kind="KopfPeering", singular="kopfpeering", namespaced=True,
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"})
    kube.objects[PEERINGS, NAMESPACE, PEERING] = {
        "apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
        "metadata": {"name": PEERING, "namespace": NAMESPACE}}


def peers(kube: kmock.KubernetesEmulator) -> dict[str, Any]:
    """The replicas' keep-alives in the peering object, by kopf identity."""
    return dict(kube.objects[PEERINGS, NAMESPACE, PEERING].raw.get("status") or {})


@contextlib.contextmanager
def replicas(kube: kmock.KubernetesEmulator, workdir: Path, bootstrap: str
             ) -> Iterator[list[OperatorProcess]]:
    procs = [OperatorProcess(workdir, str(kube.url).rstrip("/"), bootstrap,
                             namespaces=[NAMESPACE], extra_args=["--peering", PEERING],
                             name=f"operator-{i}") for i in range(2)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.stop()


async def test_one_replica_works_and_the_other_takes_over(kmock: kmock.KubernetesEmulator,
                                                          tmp_path: Path) -> None:
    declare_crds(kmock)
    declare_peering(kmock)
    broker = BrokerProcess(tmp_path / "b")
    try:
        broker.start()
        with replicas(kmock, tmp_path, broker.address) as procs:
            for proc in procs:
                proc.start()
            for proc in procs:
                await proc.wait_alive()

            async def both_seen() -> list[int] | None:
                prios = [int(p["priority"]) for p in peers(kmock).values()]
                return prios if len(prios) == 2 else None

            prios = await eventually(both_seen, WAIT_S, "both replicas in the peering",
                                     lambda: "\n".join(p.log() for p in procs))
            assert len(set(prios)) == 2  # drawn, not fixed
            assert all(p < 0 for p in prios)  # below `kopf run --dev`'s 666

            async def one_paused() -> list[OperatorProcess] | None:
                paused = [p for p in procs if "Pausing operations in favour of" in p.log()]
                return paused if len(paused) == 1 else None

            [standby] = await eventually(one_paused, WAIT_S, "one replica paused",
                                         lambda: "\n".join(p.log() for p in procs))
            [active] = [p for p in procs if p is not standby]

            await apply(kmock, manifest("Topic", "first", {"partitions": 1,
                                                           "replicationFactor": 1}))
            await wait_ready(kmock, active, "Topic", "first")
            assert "topic-create" in active.log()
            assert "topic-create" not in standby.log()

            # The working replica goes (SIGTERM: it leaves the peering on its way out).
            active.stop()

            async def resumed() -> bool:
                return "Resuming operations after the pause" in standby.log()

            await eventually(resumed, WAIT_S, "the standby resuming", standby.log)
            await apply(kmock, manifest("Topic", "second", {"partitions": 2,
                                                            "replicationFactor": 1}))
            await wait_ready(kmock, standby, "Topic", "second")
            async with Admin(broker.address) as admin:
                assert len((await admin.describe_topic("second")).partitions) == 2
    finally:
        broker.stop()
