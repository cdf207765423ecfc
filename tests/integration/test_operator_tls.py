"""A TLS Cluster on real brokers: the test kubelet (tests/operator_kubelet.py) runs the pods
the operator renders with the certificate it issued (mutual TLS between the brokers,
authorization on), and the operator's own client reaches them over TLS, checking the
pods' DNS names in their certificate although they listen on 127.0.0.1 here: a Topic made
through the operator is in the brokers, and a plaintext client is turned away."""

from __future__ import annotations

from pathlib import Path

import kmock
import pytest

from odradek.client import Admin, OdradekError
from odradek.client.options import ConnectionOptions
from tests import kube
from tests.operator_fixtures import WAIT_S, running_operator
from tests.operator_kubelet import Kubelet

pytestmark = [pytest.mark.slow, pytest.mark.kmock(cls=kube.OdradekKube)]
SPEC = {"brokers": 3, "tls": {"enabled": True}, "authorization": {"enabled": True}}


def pod_files(kubelet: Kubelet, pod: str) -> ConnectionOptions:
    """The brokers' own certificate as the kubelet mounted it into `pod`."""
    files = kubelet.root / f"{pod}-tls"
    return ConnectionOptions(
        tls_ca=files / "ca.crt", tls_cert=files / "tls.crt", tls_key=files / "tls.key",
        tls_server_name=f"{pod}.secure-brokers.{kube.NAMESPACE}.svc")


async def test_operator_speaks_tls_to_tls_brokers(kmock: kmock.KubernetesEmulator,
                                                  tmp_path: Path) -> None:
    async with Kubelet(kmock, tmp_path / "pods") as kubelet, running_operator(
            kmock, tmp_path, kubelet.bootstrap("secure", 3)) as op:
        bootstrap = kubelet.bootstrap("secure", 3)
        await kube.apply(kmock, kube.manifest("Cluster", "secure", SPEC))
        await kube.wait_ready(kmock, op, "Cluster", "secure", timeout=3 * WAIT_S)
        assert set(kubelet.running) == {f"secure-{i}" for i in range(3)}

        await kube.apply(kmock, kube.manifest("Topic", "orders", {
            "clusterRef": "secure", "partitions": 3, "replicationFactor": 3}))
        obj = await kube.wait_ready(kmock, op, "Topic", "orders", timeout=2 * WAIT_S)
        assert [(p["partition"], len(p["replicas"])) for p in obj["status"]["partitions"]] \
            == [(0, 3), (1, 3), (2, 3)]

        async with Admin(bootstrap, connection=pod_files(kubelet, "secure-1")) as admin:
            desc = await admin.describe_topic("orders")
            assert desc.topic_id == obj["status"]["topicId"]
            assert sorted(b.id for b in (await admin.metadata()).brokers) == [0, 1, 2]

        # The listener is TLS only: a plaintext client gets no answer.
        async with Admin(bootstrap, request_timeout_ms=2_000, tls=False) as plain:
            with pytest.raises(OdradekError):
                await plain.describe_topic("orders")
