"""Secured Clusters on real brokers run by the test kubelet (tests/operator_kubelet.py)
from the pods the operator renders.

With TLS: the brokers use the certificate the operator issued (mutual TLS between them,
authorization on), and the operator's own client reaches them over TLS, checking the pods'
DNS names in their certificate although they listen on 127.0.0.1 here: a Topic made
through the operator is in the brokers, and a plaintext client is turned away. A tls User
of that Cluster gets a certificate from the Cluster's own CA, good for its ACLs only.

The super user: the Cluster's Secret `<name>-admin` holds a generated password that the
brokers created their user with and the operator logs in with; with authorization and no
TLS (one broker) that login is the operator's only way in, and a Secret deleted by hand
is made again with a new password that the brokers take."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import kmock
import pytest
from confluent_kafka.admin import AdminClient
from cryptography import x509

from odradek.client import Admin, OdradekError, PermissionDeniedError
from odradek.client.options import ConnectionOptions
from odradek.operator import pki
from tests import kube
from tests.operator_fixtures import WAIT_S, running_operator
from tests.operator_kubelet import Kubelet

pytestmark = [pytest.mark.slow, pytest.mark.kmock(cls=kube.OdradekKube)]
SPEC = {"brokers": 3, "tls": {"enabled": True}, "authorization": {"enabled": True},
        "listeners": {"internal": {"port": 9094, "kafkaPort": 9095}}}


def pod_files(kubelet: Kubelet, pod: str) -> ConnectionOptions:
    """The brokers' own certificate as the kubelet mounted it into `pod`."""
    files = kubelet.root / f"{pod}-tls"
    return ConnectionOptions(
        tls_ca=files / "ca.crt", tls_cert=files / "tls.crt", tls_key=files / "tls.key",
        tls_server_name=f"{pod}.secure-brokers.{kube.NAMESPACE}.svc")


def super_user_secret(kube_: kmock.KubernetesEmulator, cluster: str) -> dict[str, Any]:
    [secret] = [s for s in kube.objects_of(kube_, "v1/secrets")
                if s["metadata"]["name"] == f"{cluster}-admin"]
    return secret


def password(secret: dict[str, Any]) -> str:
    return (pki.decoded(secret, "password") or b"").decode()


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

        # The super user's Secret, owned by the Cluster; its login works over TLS (with a
        # certificate for the handshake: client certificates are required).
        secret = super_user_secret(kmock, "secure")
        uid = kube.stored(kmock, "Cluster", "secure")["metadata"]["uid"]  # type: ignore[index]
        assert [r["uid"] for r in secret["metadata"]["ownerReferences"]] == [uid]
        assert pki.decoded(secret, "bootstrap") == \
            f"secure-bootstrap.{kube.NAMESPACE}.svc:9092".encode()
        login = dataclasses.replace(pod_files(kubelet, "secure-2"), username="admin",
                                    password=password(secret))
        async with Admin(bootstrap, connection=login) as admin:
            assert "admin" in {u.name for u in await admin.list_users()}

        # A tls User of this Cluster: its certificate is signed by the Cluster's own CA
        # and lets it in with exactly its ACLs.
        await kube.apply(kmock, kube.manifest("User", "erin", {
            "clusterRef": "secure", "authentication": {"type": "tls"},
            "authorization": {"acls": [{"resource": {"type": "topic", "name": "orders"},
                                        "operations": ["describe"]}]}}))
        await kube.wait_ready(kmock, op, "User", "erin", timeout=2 * WAIT_S)
        [user_secret] = [s for s in kube.objects_of(kmock, "v1/secrets")
                         if s["metadata"]["name"] == "erin"]
        [ca_secret] = [s for s in kube.objects_of(kmock, "v1/secrets")
                       if s["metadata"]["name"] == "secure-ca"]
        ca = x509.load_pem_x509_certificate(pki.decoded(ca_secret, "tls.crt") or b"")
        cert = x509.load_pem_x509_certificate(pki.decoded(user_secret, "tls.crt") or b"")
        cert.verify_directly_issued_by(ca)
        for key in ("ca.crt", "tls.crt", "tls.key"):
            (tmp_path / key).write_bytes(pki.decoded(user_secret, key) or b"")
        erin = ConnectionOptions(tls_ca=tmp_path / "ca.crt", tls_cert=tmp_path / "tls.crt",
                                 tls_key=tmp_path / "tls.key",
                                 tls_server_name=f"secure-0.secure-brokers.{kube.NAMESPACE}.svc")
        async with Admin(bootstrap, connection=erin) as admin:
            assert (await admin.describe_topic("orders")).name == "orders"
            with pytest.raises(PermissionDeniedError):
                await admin.create_topic("erin-made", 1, 1)

        # A scram User needs no certificate on the internal listener (TLS, no client
        # certificate asked), over gRPC and Kafka (SASL_SSL), with exactly its ACLs.
        await kube.apply(kmock, kube.manifest("User", "sam", {
            "clusterRef": "secure", "authentication": {"type": "scram-sha-512"},
            "authorization": {"acls": [{"resource": {"type": "topic", "name": "orders"},
                                        "operations": ["describe"]}]}}))
        await kube.wait_ready(kmock, op, "User", "sam", timeout=2 * WAIT_S)
        [sam_secret] = [s for s in kube.objects_of(kmock, "v1/secrets")
                        if s["metadata"]["name"] == "sam"]
        sam_password = (pki.decoded(sam_secret, "password") or b"").decode()
        internal = [kubelet.outside_address(f"secure-{i}", "internal") for i in range(3)]
        sam = ConnectionOptions(tls_ca=tmp_path / "ca.crt", username="sam",
                                password=sam_password,
                                tls_server_name=f"secure-0.secure-brokers.{kube.NAMESPACE}.svc")
        async with Admin(internal[0], connection=sam) as admin:
            assert (await admin.describe_topic("orders")).name == "orders"
            assert sorted(f"{b.host}:{b.port}" for b in (await admin.metadata()).brokers) \
                == sorted(internal)
            with pytest.raises(PermissionDeniedError):
                await admin.create_topic("sam-made", 1, 1)
        kafka = AdminClient({
            "bootstrap.servers": kubelet.outside_address("secure-1", "internal-kafka"),
            "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "sam", "sasl.password": sam_password,
            "ssl.ca.location": str(tmp_path / "ca.crt"),
            "ssl.endpoint.identification.algorithm": "none"})
        topics = await asyncio.to_thread(lambda: kafka.list_topics(timeout=30).topics)
        assert "orders" in topics

        # The listener is TLS only: a plaintext client gets no answer.
        async with Admin(bootstrap, request_timeout_ms=2_000, tls=False) as plain:
            with pytest.raises(OdradekError):
                await plain.describe_topic("orders")


async def test_the_operator_logs_in_as_the_super_user(kmock: kmock.KubernetesEmulator,
                                                     tmp_path: Path) -> None:
    async with Kubelet(kmock, tmp_path / "pods") as kubelet, running_operator(
            kmock, tmp_path, kubelet.bootstrap("solo", 1)) as op:
        bootstrap = kubelet.bootstrap("solo", 1)
        await kube.apply(kmock, kube.manifest("Cluster", "solo", {
            "brokers": 1, "authorization": {"enabled": True}}))
        cluster = await kube.wait_ready(kmock, op, "Cluster", "solo", timeout=3 * WAIT_S)
        assert cluster["status"]["superUserSecret"] == "solo-admin"
        # No certificates here: only the super user's login lets the operator in.
        await kube.apply(kmock, kube.manifest("Topic", "audit", {
            "clusterRef": "solo", "partitions": 2, "replicationFactor": 1}))
        await kube.wait_ready(kmock, op, "Topic", "audit", timeout=2 * WAIT_S)
        async with Admin(bootstrap, request_timeout_ms=5_000) as anonymous:
            with pytest.raises(OdradekError):
                await anonymous.create_topic("not-allowed", 1, 1)

        first = password(super_user_secret(kmock, "solo"))
        reply = await kmock.delete(f"/api/v1/namespaces/{kube.NAMESPACE}/secrets/solo-admin")
        assert reply.status == 200, await reply.text()

        async def remade() -> str | None:
            found = [s for s in kube.objects_of(kmock, "v1/secrets")
                     if s["metadata"]["name"] == "solo-admin"]
            return password(found[0]) if found and password(found[0]) != first else None

        second = await kube.eventually(remade, WAIT_S, "a new super user Secret", op.log)
        async with Admin(bootstrap, username="admin", password=second) as admin:
            assert "audit" in {t.name for t in (await admin.metadata()).topics}
        async with Admin(bootstrap, username="admin", password=first,
                         request_timeout_ms=5_000) as stale:
            with pytest.raises(OdradekError):
                await stale.metadata()
