"""Cluster resources through `odradek operator` against kmock: the rendered objects are
created, owned by the Cluster and valid; readiness is read back from the StatefulSet;
objects changed by hand are put back; deleting the Cluster takes its objects with it.
With real brokers run by the test kubelet (tests/operator_kubelet.py) from the pods
under a running acks=quorum producer: 3 -> 4 moves partitions onto the new broker, a
scale-down below the voters is refused, 4 -> 3 drains the broker that goes before the
StatefulSet shrinks and its pod goes, and no acknowledged record is lost. With spec.tls
the CA and the brokers' certificate are issued, mounted and issued again when missing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kmock
import kubernetes_validate
import pytest
import yaml
from cryptography import x509

from odradek.client import Admin
from odradek.operator import pki
from tests.kube import (
    NAMESPACE,
    OdradekKube,
    OperatorProcess,
    apply,
    eventually,
    manifest,
    objects_of,
    patch_spec,
    ready,
    resource_url,
    stored,
    wait_ready,
)
from tests.operator_fixtures import WAIT_S, producing, running_operator
from tests.operator_kubelet import Kubelet

pytestmark = [pytest.mark.kmock(cls=OdradekKube)]
ROOT = Path(__file__).resolve().parents[2]

KINDS = {"ConfigMap": "v1/configmaps", "Service": "v1/services",
         "PodDisruptionBudget": "policy/v1/poddisruptionbudgets",
         "StatefulSet": "apps/v1/statefulsets"}


@pytest.fixture
async def operator(kmock: kmock.KubernetesEmulator, tmp_path: Path
                   ) -> AsyncIterator[OperatorProcess]:
    # No brokers are needed: the Cluster handler only talks to the Kubernetes API. All
    # namespaces: the operator watches cluster-wide.
    async with running_operator(kmock, tmp_path, "127.0.0.1:1", namespaces=None) as proc:
        yield proc


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
    types = {c["type"]: (c["status"], c["reason"]) for c in obj["status"]["conditions"]}
    # No broker process runs here: the example's spec.config waits to be applied.
    assert types["Ready"][0] == "True" and types["Degraded"][0] == "False"
    assert types["Reconciling"] == ("True", "ApplyingConfig")
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


async def test_cluster_tls_secrets(kmock: kmock.KubernetesEmulator,
                                   operator: OperatorProcess) -> None:
    """spec.tls without a Secret of one's own: the operator generates the CA, signs the
    brokers' certificate for the headless Service's names, mounts it, and issues it again
    when it goes missing; several brokers with authorization are accepted with TLS."""
    await apply(kmock, manifest("Cluster", "secure", {
        "brokers": 3, "tls": {"enabled": True},
        "authorization": {"enabled": True, "superUsers": ["User:admin"]}}))
    obj = await wait_ready(kmock, operator, "Cluster", "secure", "False", "BrokersNotReady")
    uid = obj["metadata"]["uid"]

    def secrets() -> dict[str, dict[str, Any]]:
        return {s["metadata"]["name"]: s for s in objects_of(kmock, "v1/secrets")}

    async def issued() -> dict[str, dict[str, Any]]:
        found = secrets()
        return found if {"secure-ca", "secure-broker-tls"} <= set(found) else {}

    found = await eventually(issued, WAIT_S, "CA and broker Secrets", operator.log)
    for secret in (found["secure-ca"], found["secure-broker-tls"]):
        assert [r["uid"] for r in secret["metadata"]["ownerReferences"]] == [uid]
    ca = x509.load_pem_x509_certificate(pki.decoded(found["secure-ca"], "tls.crt") or b"")
    cert = x509.load_pem_x509_certificate(
        pki.decoded(found["secure-broker-tls"], "tls.crt") or b"")
    assert cert.issuer == ca.subject
    names = cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert f"*.secure-brokers.{NAMESPACE}.svc" in names
    sts = next(o for o in objects_of(kmock, "apps/v1/statefulsets")
               if o["metadata"]["name"] == "secure")
    volumes = sts["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": "secure-broker-tls",
                                      "defaultMode": 0o440}} in volumes

    # A broker certificate gone missing is issued again, by the same CA.
    reply = await kmock.delete(f"/api/v1/namespaces/{NAMESPACE}/secrets/secure-broker-tls")
    assert reply.status == 200, await reply.text()

    async def reissued() -> bytes | None:
        again = secrets().get("secure-broker-tls")
        data = pki.decoded(again, "tls.crt")
        return data if data and data != pki.decoded(found["secure-broker-tls"], "tls.crt") \
            else None

    data = await eventually(reissued, WAIT_S, "the broker Secret issued again", operator.log)
    assert x509.load_pem_x509_certificate(data).issuer == ca.subject
    assert pki.decoded(secrets()["secure-ca"], "tls.crt") == pki.decoded(
        found["secure-ca"], "tls.crt")

    # A broker Secret of one's own that is not there: a condition, nothing rendered.
    await apply(kmock, manifest("Cluster", "mine", {
        "brokers": 1, "tls": {"enabled": True, "secretName": "absent"}}))
    obj = await wait_ready(kmock, operator, "Cluster", "mine", "False", "TLSSecretInvalid")
    assert "absent" in ready(obj)["message"]  # type: ignore[index]
    assert not [o for o in objects_of(kmock, "apps/v1/statefulsets")
                if o["metadata"]["name"] == "mine"]


@pytest.mark.slow
async def test_scale_up_and_down_under_a_producer(kmock: kmock.KubernetesEmulator,
                                                  tmp_path: Path) -> None:
    async with Kubelet(kmock, tmp_path / "pods") as kubelet, running_operator(
            kmock, tmp_path, kubelet.bootstrap("events", 3)) as op:
        bootstrap = kubelet.bootstrap("events", 3)
        await apply(kmock, manifest("Cluster", "events", {"brokers": 3}))
        await wait_ready(kmock, op, "Cluster", "events", timeout=3 * WAIT_S)
        async with Admin(bootstrap) as admin:
            await admin.create_topic("spread", 6, 2)
            async with producing(bootstrap, "spread") as producer:
                await scale_up_and_down(kmock, op, kubelet, admin)
                # Nothing acknowledged was lost while partitions moved.
                await producer.finish()
                assert len(producer.acked) > 50
                await producer.read_all(6)


async def scale_up_and_down(kube: kmock.KubernetesEmulator, op: OperatorProcess,
                            kubelet: Kubelet, admin: Admin) -> None:
    def sts_replicas() -> int:
        return int(objects_of(kube, "apps/v1/statefulsets")[0]["spec"]["replicas"])

    async def hosted(broker: int) -> int:
        md = await admin.metadata()
        return sum(broker in p.replicas for t in md.topics for p in t.partitions
                   if not p.target_replicas)

    # 3 -> 4: the StatefulSet grows, the kubelet runs the new pod, it gets partitions.
    await patch_spec(kube, "Cluster", "events", {"brokers": 4})

    async def balanced() -> bool:
        md = await admin.metadata()
        if any(p.target_replicas for t in md.topics for p in t.partitions):
            return False
        counts = [await hosted(b) for b in range(4)]
        return sts_replicas() == 4 and max(counts) - min(counts) <= 1

    await eventually(balanced, 3 * WAIT_S, "replicas spread over 4 brokers", op.log)
    assert await hosted(3) > 0 and "events-3" in kubelet.running

    # Below the 3 voters: refused, nothing changes.
    await patch_spec(kube, "Cluster", "events", {"brokers": 2})
    await wait_ready(kube, op, "Cluster", "events", "False", "ScaleDownRefused")
    assert sts_replicas() == 4 and await hosted(3) > 0

    # 4 -> 3: broker 3 is drained, then the StatefulSet shrinks and its pod goes.
    await patch_spec(kube, "Cluster", "events", {"brokers": 3})

    async def shrunk() -> bool:
        return sts_replicas() == 3 and "events-3" not in kubelet.running

    await eventually(shrunk, 3 * WAIT_S, "StatefulSet at 3 replicas, pod 3 gone", op.log)
    assert await hosted(3) == 0
    desc = await admin.describe_topic("spread")
    assert all(len(p.info.replicas) == 2 for p in desc.partitions)
