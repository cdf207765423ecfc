"""A Cluster's TLS, rack labels and rolling restarts as plain functions: the rendered
StatefulSet mounts the brokers' certificate and passes the --tls-* flags, the generated CA
signs a certificate for the headless Service's names and both are renewed before expiry;
the rack comes from the node's label through an annotation; the roll plan restarts one
broker at a time and stops at one that does not come back."""

from __future__ import annotations

import datetime as dt
from typing import Any

import kubernetes_validate
import pytest
from cryptography import x509

from odradek.cli.main import build_parser
from odradek.operator import cluster as cl
from odradek.operator import pki, superuser

OWNER = {"apiVersion": "odradek.io/v1alpha1", "kind": "Cluster",
         "metadata": {"name": "events", "uid": "uid-1"}}
TLS = {"brokers": 3, "tls": {"enabled": True},
       "authorization": {"enabled": True, "superUsers": ["User:admin"]}}
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def sts(spec: dict[str, Any]) -> dict[str, Any]:
    c = cl.desired(spec, "events", "prod")
    return next(o for o in cl.render(c, OWNER) if o["kind"] == "StatefulSet")


def container(spec: dict[str, Any]) -> dict[str, Any]:
    return dict(sts(spec)["spec"]["template"]["spec"]["containers"][0])


def test_tls_is_rendered_as_a_mounted_secret_and_broker_flags() -> None:
    rendered = sts(TLS)
    kubernetes_validate.validate(rendered, kubernetes_validate.latest_version(), strict=True)
    pod = rendered["spec"]["template"]["spec"]
    assert [v["secret"]["secretName"] for v in pod["volumes"]] == [
        "events-broker-tls", "events-admin"]
    [broker] = pod["containers"]
    assert {"name": "tls", "mountPath": pki.MOUNT, "readOnly": True} in broker["volumeMounts"]
    args = build_parser().parse_args(broker["args"])
    assert (args.listener, args.tls_client_auth) == ("tls", "required")
    assert (args.tls_cert, args.tls_key, args.tls_ca) == (
        f"{pki.MOUNT}/tls.crt", f"{pki.MOUNT}/tls.key", f"{pki.MOUNT}/ca.crt")
    # The Cluster's own super user (listed once though the spec names it too), created by
    # the brokers from the password in its Secret, mounted as a file.
    assert (args.authorization, args.super_users) == ("on", "User:admin")
    assert (args.bootstrap_user, args.bootstrap_password_file) == (
        "admin", f"{superuser.MOUNT}/password")
    assert superuser.mount() in broker["volumeMounts"]
    # The kubelet's gRPC probe cannot speak TLS: an exec probe with the same files.
    command = broker["readinessProbe"]["exec"]["command"]
    assert command[:4] == ["python", "-m", "odradek.cli.pod", "health"]
    assert f"{pki.MOUNT}/ca.crt" in command


def test_a_secret_of_ones_own_is_mounted_and_tls_rolls_the_pods() -> None:
    own = {**TLS, "tls": {"enabled": True, "secretName": "mine"}}
    assert sts(own)["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] == "mine"
    # Authorization with other super users still has the Cluster's own first.
    other = {**TLS, "authorization": {"enabled": True, "superUsers": ["User:ops"]}}
    args = build_parser().parse_args(container(other)["args"])
    assert args.super_users == "User:admin;User:ops"

    def pod_hash(spec: dict[str, Any]) -> str:
        return str(sts(spec)["spec"]["template"]["metadata"]["annotations"][
            "odradek.io/config-hash"])

    assert pod_hash({"brokers": 3}) != pod_hash({"brokers": 3, "tls": {"enabled": True}})
    assert "volumes" not in sts({"brokers": 3})["spec"]["template"]["spec"]
    assert "--bootstrap-user" not in container({"brokers": 3})["args"]
    assert "grpc" in container({"brokers": 3})["readinessProbe"]


def test_authorization_with_several_brokers_needs_tls() -> None:
    with pytest.raises(cl.SpecError, match="tls"):
        cl.desired({"brokers": 3, "authorization": {"enabled": True}}, "x", "ns")
    assert cl.desired(TLS, "x", "ns").authorization


def secret(files: dict[str, bytes] | None) -> dict[str, Any] | None:
    return None if files is None else pki.secret_body("s", "prod", {}, None, files)


def test_generated_ca_signs_a_broker_certificate_for_the_headless_names() -> None:
    first = pki.plan("events", "prod", None, None, NOW)
    assert first.ca is not None and first.broker is not None
    ca = x509.load_pem_x509_certificate(first.ca["tls.crt"])
    cert = x509.load_pem_x509_certificate(first.broker["tls.crt"])
    assert cert.issuer == ca.subject
    names = cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "*.events-brokers.prod.svc" in names
    assert "*.events-brokers.prod.svc.cluster.local" in names
    assert "events-bootstrap.prod.svc" in names
    assert first.broker["ca.crt"] == first.ca["tls.crt"]
    # Both current: nothing is written again.
    assert pki.plan("events", "prod", secret(first.ca), secret(first.broker), NOW) == (
        pki.TLSPlan(None, None))
    # A broker certificate missing, or near its expiry, is issued again by the same CA.
    again = pki.plan("events", "prod", secret(first.ca), None, NOW)
    assert again.ca is None and again.broker is not None
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=pki.CERT_DAYS) - pki.RENEW_BEFORE / 2
    renewed = pki.plan("events", "prod", secret(first.ca), secret(first.broker), soon)
    assert renewed.ca is None and renewed.broker is not None


def test_an_expiring_ca_is_replaced_and_stays_trusted() -> None:
    first = pki.plan("events", "prod", None, None, NOW)
    assert first.ca is not None and first.broker is not None
    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=pki.CA_DAYS) - pki.RENEW_BEFORE / 2
    renewed = pki.plan("events", "prod", secret(first.ca), secret(first.broker), late)
    assert renewed.ca is not None and renewed.broker is not None
    assert renewed.ca["tls.crt"] != first.ca["tls.crt"]
    bundle = x509.load_pem_x509_certificates(renewed.broker["ca.crt"])
    assert [c.subject for c in bundle][1:] == [
        x509.load_pem_x509_certificate(first.ca["tls.crt"]).subject]
    # A CA made anew under the same name: the certificate is issued again (signature).
    same_name = pki.plan("events", "prod", None, None, NOW)
    assert same_name.ca is not None
    assert pki.needs_broker_cert(secret(first.broker), x509.load_pem_x509_certificate(
        same_name.ca["tls.crt"]), pki.sans("events", "prod"), NOW)
    # A CA someone else renews (the Helm chart's) is only read.
    kept = pki.plan("events", "prod", secret(first.ca), None, late, own_ca=False)
    assert kept.ca is None and kept.broker is not None
    # ... and when it is replaced there, the brokers keep trusting the one they had.
    assert same_name.ca is not None
    moved = pki.plan("events", "prod", secret(same_name.ca), secret(first.broker), NOW,
                     own_ca=False)
    assert moved.ca is None and moved.broker is not None
    assert len(x509.load_pem_x509_certificates(moved.broker["ca.crt"])) == 2
    with pytest.raises(ValueError):
        pki.plan("events", "prod", None, None, NOW, own_ca=False)


def test_rack_from_the_node_label() -> None:
    spec = {"brokers": 3, "rack": {"topologyKey": "topology.kubernetes.io/zone"}}
    rendered = sts(spec)
    kubernetes_validate.validate(rendered, kubernetes_validate.latest_version(), strict=True)
    template = rendered["spec"]["template"]
    assert template["metadata"]["annotations"][cl.RACK_KEY_ANNOTATION] == (
        "topology.kubernetes.io/zone")
    [init] = template["spec"]["initContainers"]
    assert init["command"][-2:] == ["wait-file", f"{cl.PODINFO}/rack"]
    env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
    assert env["ODRADEK_RACK"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        f"metadata.annotations['{cl.RACK_ANNOTATION}']")
    pod = {"metadata": {"annotations": {cl.RACK_KEY_ANNOTATION: "zone"}}}
    node = {"metadata": {"labels": {"zone": "eu-1a"}}}
    assert cl.rack_of(pod, node) == "eu-1a"
    assert cl.rack_of(pod, {"metadata": {"labels": {}}}) is None
    done = {"metadata": {"annotations": {cl.RACK_KEY_ANNOTATION: "zone",
                                         cl.RACK_ANNOTATION: "eu-1a"}}}
    assert cl.rack_of(done, node) is None
    assert cl.rack_of({"metadata": {}}, node) is None


C = cl.desired({"brokers": 4}, "events", "prod")
NEW = cl.config_hash(C)


def pods(*states: tuple[str, bool], age: float = 10.0) -> list[cl.PodState]:
    return [cl.PodState(i, h, r, age) for i, (h, r) in enumerate(states)]


def test_roll_restarts_one_broker_at_a_time_voters_last() -> None:
    old = "old"
    assert cl.roll_plan(C, pods(*[(NEW, True)] * 4), 0).action == "done"
    step = cl.roll_plan(C, pods(*[(old, True)] * 4), 0)
    assert (step.action, step.ordinal) == ("restart", 3)
    # Broker 3 is back: under-replicated partitions hold the roll.
    assert cl.roll_plan(C, pods((old, True), (old, True), (old, True), (NEW, True)),
                        2).action == "wait"
    step = cl.roll_plan(C, pods((old, True), (old, True), (old, True), (NEW, True)), 0)
    assert (step.action, step.ordinal) == ("restart", 2)
    # A pod being recreated, or not ready yet: wait.
    assert cl.roll_plan(C, pods((old, True), (old, True), (old, True)), 0).action == "wait"
    assert cl.roll_plan(C, pods((old, True), (old, True), (NEW, False), (NEW, True)),
                        0).action == "wait"
    going = [*pods((old, True), (old, True), (old, True)), cl.PodState(3, NEW, True, 1, True)]
    assert cl.roll_plan(C, going, 0).action == "wait"


def test_a_broker_that_does_not_come_back_stops_the_roll() -> None:
    stuck = cl.roll_plan(C, pods(("old", True), ("old", True), ("old", True), (NEW, False),
                                 age=cl.ROLL_TIMEOUT_S + 1), 0)
    assert (stuck.action, stuck.ordinal) == ("stuck", 3) and "not ready" in stuck.message


def test_pod_state_and_under_replicated() -> None:
    pod = {"metadata": {"name": "events-2", "creationTimestamp": "2026-01-01T00:00:00Z",
                        "labels": {"apps.kubernetes.io/pod-index": "2"},
                        "annotations": {"odradek.io/config-hash": "h"}},
           "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    state = cl.pod_state(pod, NOW.timestamp() + 30)
    assert state == cl.PodState(2, "h", True, 30.0, False)
    assert cl.pod_state({"metadata": {"name": "other"}}, 0) is None
    assert cl.under_replicated([(0, (0, 1), (0, 1)), (1, (0, 1), (1,)), (-1, (2,), (2,))]) == 2
