"""Cluster resources through `odradek operator` against kmock: the rendered objects are
created, owned by the Cluster and valid; readiness is read back from the StatefulSet;
objects changed by hand are put back; deleting the Cluster takes its objects with it.
(No pods run here: a test kubelet is not built.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kmock
import kubernetes_validate
import pytest
import yaml

from tests.kube import (
    NAMESPACE,
    OdradekKube,
    OperatorProcess,
    apply,
    declare_crds,
    eventually,
    objects_of,
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
