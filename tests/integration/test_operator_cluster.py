"""Cluster resources through `odradek operator` against kmock: the rendered objects are
created, owned by the Cluster and valid; readiness is read back from the StatefulSet;
objects changed by hand are put back; deleting the Cluster takes its objects with it; a
scale-down drains the brokers that go (4 real brokers) before the StatefulSet shrinks and
is refused below the voters. (No pods run: a test kubelet is not built, so the brokers
are started by the test, not from the StatefulSet.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import kmock
import kubernetes_validate
import pytest
import yaml

from odradek.client import Admin
from tests.brokers import ClusterProcesses
from tests.kube import (
    NAMESPACE,
    OdradekKube,
    OperatorProcess,
    apply,
    declare_crds,
    eventually,
    manifest,
    objects_of,
    patch_spec,
    resource_url,
    stored,
    wait_ready,
)

pytestmark = [pytest.mark.kmock(cls=OdradekKube)]
ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 40.0
KINDS = {"ConfigMap": "v1/configmaps", "Service": "v1/services",
         "PodDisruptionBudget": "policy/v1/poddisruptionbudgets",
         "StatefulSet": "apps/v1/statefulsets"}


@pytest.fixture
async def operator(kmock: kmock.KubernetesEmulator, tmp_path: Path
                   ) -> AsyncIterator[OperatorProcess]:
    declare_crds(kmock)
    # No brokers are needed: the Cluster handler only talks to the Kubernetes API. All
    # namespaces: the operator watches cluster-wide.
    proc = OperatorProcess(tmp_path, str(kmock.url).rstrip("/"), "127.0.0.1:1",
                           namespaces=None)
    try:
        proc.start()
        await proc.wait_alive()
        yield proc
    finally:
        proc.stop()


def owned(kube: kmock.KubernetesEmulator, uid: str) -> dict[str, dict[str, Any]]:
    found = {}
    for kind, resource in KINDS.items():
        for obj in objects_of(kube, resource):
            if any(r["uid"] == uid for r in obj["metadata"].get("ownerReferences", [])):
                found[f"{kind}/{obj['metadata']['name']}"] = obj
    return found


async def test_cluster_renders_and_reports(kmock: kmock.KubernetesEmulator,
                                           operator: OperatorProcess) -> None:
    body = yaml.safe_load((ROOT / "deploy/examples/cluster.yaml").read_text())
    body["metadata"]["namespace"] = NAMESPACE
    await apply(kmock, body)
    obj = await wait_ready(kmock, operator, "Cluster", "events", "False", "BrokersNotReady")
    assert obj["status"]["readyBrokers"] == 0 and obj["status"]["brokers"] == 3
    assert obj["status"]["bootstrap"] == f"events-bootstrap.{NAMESPACE}.svc:9092"
    uid = obj["metadata"]["uid"]

    async def rendered() -> dict[str, dict[str, Any]]:
        parts = owned(kmock, uid)
        return parts if len(parts) == 5 else {}

    parts = await eventually(rendered, WAIT_S, "5 owned objects", operator.log)
    for part in parts.values():
        kubernetes_validate.validate(
            {k: v for k, v in part.items() if k != "status"},
            kubernetes_validate.latest_version(), strict=True)
    sts = parts["StatefulSet/events"]
    assert sts["spec"]["replicas"] == 3

    # The StatefulSet controller reports its pods ready: so does the Cluster.
    reply = await kmock.patch(
        f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets/events/status",
        json={"status": {"replicas": 3, "readyReplicas": 3, "updatedReplicas": 3,
                         "observedGeneration": sts["metadata"]["generation"]}},
        headers={"Content-Type": "application/merge-patch+json"})
    assert reply.status == 200, await reply.text()
    obj = await wait_ready(kmock, operator, "Cluster", "events")
    types = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    assert types == {"Ready": "True", "Reconciling": "False", "Degraded": "False"}
    assert obj["status"]["readyBrokers"] == 3

    # A PodDisruptionBudget changed by hand is put back at the next resync.
    await kmock.patch(f"/apis/policy/v1/namespaces/{NAMESPACE}/poddisruptionbudgets/events",
                      json={"spec": {"maxUnavailable": 3}},
                      headers={"Content-Type": "application/merge-patch+json"})

    async def restored() -> bool:
        return owned(kmock, uid)["PodDisruptionBudget/events"]["spec"]["maxUnavailable"] == 1

    await eventually(restored, WAIT_S, "PDB put back", operator.log)

    # Deleting the Cluster deletes what it owns (garbage collection by owner).
    await kmock.delete(resource_url("Cluster", "events"))

    async def gone() -> bool:
        return stored(kmock, "Cluster", "events") is None and not owned(kmock, uid)

    await eventually(gone, WAIT_S, "cluster and its objects deleted", operator.log)


@pytest.fixture
def four_brokers(tmp_path: Path) -> Iterator[ClusterProcesses]:
    cluster = ClusterProcesses(tmp_path / "brokers", 4)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


async def set_sts_status(kube: kmock.KubernetesEmulator, replicas: int) -> None:
    sts = objects_of(kube, "apps/v1/statefulsets")[0]
    reply = await kube.patch(
        f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets/events/status",
        json={"status": {"replicas": replicas, "readyReplicas": replicas,
                         "updatedReplicas": replicas,
                         "observedGeneration": sts["metadata"]["generation"]}},
        headers={"Content-Type": "application/merge-patch+json"})
    assert reply.status == 200, await reply.text()


@pytest.mark.slow
async def test_scale_down_drains_first(kmock: kmock.KubernetesEmulator, tmp_path: Path,
                                       four_brokers: ClusterProcesses) -> None:
    declare_crds(kmock)
    op = OperatorProcess(tmp_path, str(kmock.url).rstrip("/"), four_brokers.bootstrap,
                         namespaces=[NAMESPACE])
    try:
        op.start()
        await op.wait_alive()
        async with Admin(four_brokers.bootstrap) as admin:
            await admin.create_topic("spread", 8, 2)
            await apply(kmock, manifest("Cluster", "events", {"brokers": 4}))

            async def sts_replicas() -> int | None:
                found = objects_of(kmock, "apps/v1/statefulsets")
                return found[0]["spec"]["replicas"] if found else None

            await eventually(sts_replicas, WAIT_S, "a StatefulSet", op.log)
            await set_sts_status(kmock, 4)
            await wait_ready(kmock, op, "Cluster", "events")

            async def on_broker_3() -> int:
                md = await admin.metadata()
                return sum(3 in p.replicas for t in md.topics for p in t.partitions)

            assert await on_broker_3() > 0

            # Below the 3 voters: refused, nothing changes.
            await patch_spec(kmock, "Cluster", "events", {"brokers": 2})
            await wait_ready(kmock, op, "Cluster", "events", "False", "ScaleDownRefused")
            assert await sts_replicas() == 4 and await on_broker_3() > 0

            # 4 -> 3: broker 3 is drained, then the StatefulSet shrinks.
            await patch_spec(kmock, "Cluster", "events", {"brokers": 3})

            async def shrunk() -> bool:
                return await sts_replicas() == 3

            await eventually(shrunk, WAIT_S, "StatefulSet at 3 replicas", op.log)
            assert await on_broker_3() == 0
            desc = await admin.describe_topic("spread")
            assert all(len(p.info.replicas) == 2 for p in desc.partitions)
    finally:
        op.stop()
