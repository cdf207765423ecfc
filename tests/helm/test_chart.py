"""helm lint --strict, and helm template with the default values and a matrix of value
sets: every manifest valid (built-in kinds strictly, custom resources against their CRDs),
and what each value is for visible in what it renders."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from odradek.operator import cluster as cl
from odradek.operator import crds as odradek_crds
from odradek.operator import pki, users
from odradek.security.certs import load_pair
from tests.helm.chart import (
    CHART,
    NAMESPACE,
    RELEASE,
    Doc,
    chart,
    crds,
    of_kind,
    one,
    render,
    render_files,
    validate,
)

MONITORING: dict[str, Any] = {
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}},
                "podMonitor": {"enabled": True, "interval": "15s"},
                "prometheusRule": {"enabled": True, "labels": {"release": "kps"}}},
    "grafana": {"dashboards": {"namespace": "monitoring", "folder": "",
                               "annotations": {"team": "streaming"}}},
}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "monitoring": MONITORING,
    "tls-generate": {"tls": {"enabled": True}},
    "external-listener": {"tls": {"enabled": True}, "cluster": {
        "internalListener": {"port": 9094, "kafkaPort": 9095},
        "externalListener": {"type": "NodePort", "nodePortBase": 31090, "port": 9096,
                             "kafkaPort": 9097}}},
    "tls-cert-manager": {"tls": {"enabled": True, "ca": {
        "source": "certManager",
        "certManager": {"issuerRef": {"name": "root", "kind": "Issuer"}}}}},
    "tls-existing-secret": {"tls": {"enabled": True, "ca": {
        "source": "existingSecret", "existingSecret": "my-ca"}}},
    "namespaces-ha": {"operator": {"replicas": 2, "watch": {"namespaces": ["team-a", "team-b"]}},
                      "cluster": {"create": False}},
    "all-namespaces-ha": {"operator": {"replicas": 3, "watch": {"allNamespaces": True}}},
    "one-secured-broker": {
        "nameOverride": "streams",
        "image": {"repository": "registry.example/odradek", "tag": "0.1.0-rc1",
                  "pullPolicy": "Always", "pullSecrets": ["regcred"]},
        "cluster": {"name": "payments", "brokers": 1, "voters": 1, "port": 19092,
                    "storage": {"size": "50Gi", "storageClassName": "fast-ssd"},
                    "config": {"retention.ms": 86400000, "min.insync.replicas": "1"},
                    "rack": {"topologyKey": "topology.kubernetes.io/zone"},
                    "authorization": {"enabled": True, "superUsers": ["User:admin"]},
                    "nodeSelector": {"disk": "ssd"}, "priorityClassName": "streaming",
                    "tolerations": [{"key": "dedicated", "operator": "Equal",
                                     "value": "streaming", "effect": "NoSchedule"}],
                    "affinity": {"podAntiAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [{
                            "topologyKey": "kubernetes.io/hostname", "labelSelector": {
                                "matchLabels": {"app.kubernetes.io/name": "odradek"}}}]}}},
        "operator": {
            "credentials": {"existingSecret": "odradek-admin"},
            "bootstrap": "payments-bootstrap.odradek.svc:19092",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "streaming",
                             "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{
                    "key": "node-role", "operator": "In", "values": ["streaming"]}]}]}}},
            "topologySpreadConstraints": [{
                "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "operator"}}}],
            "podAnnotations": {"example/annotation": "x"}, "podLabels": {"team": "streaming"},
            "priorityClassName": "system-cluster-critical", "logLevel": "DEBUG",
            "resyncSeconds": 60},
        "metrics": {"podMonitor": {"enabled": True}},
    },
    "bare": {"cluster": {"create": False}, "rbac": {"create": False},
             "serviceAccount": {"create": False, "name": "existing-sa"},
             "operator": {"pdb": {"enabled": False}},
             "grafana": {"dashboards": {"enabled": False}}},
}


def _rendered(name: str) -> list[Doc]:
    return render(VALUE_SETS[name])


def test_lint_strict_with_every_value_set() -> None:
    for name, values in VALUE_SETS.items():
        report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not problems, f"{name}: {problems}"


def test_lint_strict_fails_on_a_broken_template(tmp_path: Path) -> None:
    # The lint above must be able to fail: the same chart with one bad template does.
    broken = Path(chart().save_dir(tmp_path))
    (broken / "templates" / "broken.yaml").write_text("kind: {{ .Values.nope.deeper }}\n")
    report = helm.lint(broken, strict=True)
    assert report["errors"] or any(m["severity"] >= 2 for m in report["messages"])


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_manifest_validates(name: str) -> None:
    docs = _rendered(name)
    assert docs
    for doc in docs:
        assert validate(doc) == [], f"{name}: {doc['kind']} {doc['metadata']['name']}"


def test_crds_validate_strictly() -> None:
    kinds = {d["spec"]["names"]["kind"] for d in crds()}
    assert kinds == set(odradek_crds.KINDS) | {"KopfPeering", "ClusterKopfPeering"}
    for crd in crds():
        assert validate(crd) == []


def test_the_validator_rejects_what_it_should() -> None:
    # A wrong built-in object, a wrong custom resource, a wrong third-party object.
    deployment = copy.deepcopy(one(_rendered("defaults"), "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    assert validate(deployment)
    cluster = copy.deepcopy(one(_rendered("defaults"), "Cluster"))
    cluster["spec"]["brokers"] = 0
    assert validate(cluster)
    monitor = copy.deepcopy(of_kind(_rendered("monitoring"), "PodMonitor")[0])
    monitor["spec"]["podMetricsEndpoints"][0]["scrapeEvery"] = "1s"
    assert validate(monitor) == [".spec.podMetricsEndpoints[0].scrapeEvery: not in the "
                                 "PodMonitor CRD"]


def _operator_container(docs: list[Doc]) -> Doc:
    container: Doc = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return container


def _env(container: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_defaults() -> None:
    docs = _rendered("defaults")
    assert {d["kind"] for d in docs} == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
        "Deployment", "PodDisruptionBudget", "Service", "Cluster", "ConfigMap"}
    container = _operator_container(docs)
    assert container["args"] == ["operator", f"--namespace={NAMESPACE}", "--liveness-port=8080",
                                 "--metrics-port=8081", "--log-level=INFO"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    spec = one(docs, "Cluster")["spec"]
    assert spec["brokers"] == 3 and spec["image"] == f"odradek:{chart().metadata['appVersion']}"
    assert "voters" not in spec  # the operator's own default (the first three)


def test_operator_arguments_are_ones_the_cli_takes() -> None:
    """The Deployment's args parse with the `odradek` command's own parser (which takes
    no abbreviated flag)."""
    from odradek.cli.main import build_parser

    for name in VALUE_SETS:
        args = build_parser().parse_args(_operator_container(_rendered(name))["args"])
        assert args.command == "operator"
        watch = VALUE_SETS[name].get("operator", {}).get("watch", {})
        assert args.all_namespaces == watch.get("allNamespaces", False)
        assert args.namespace == ([] if args.all_namespaces
                                  else watch.get("namespaces", [NAMESPACE]))
        replicas = VALUE_SETS[name].get("operator", {}).get("replicas", 1)
        assert (args.peering is not None) == (replicas > 1), name


def test_the_cluster_resource_is_what_the_operator_renders_from() -> None:
    docs = _rendered("one-secured-broker")
    body = one(docs, "Cluster")
    spec = cl.desired(body["spec"], body["metadata"]["name"], NAMESPACE)
    assert (spec.name, spec.brokers, spec.voters, spec.port) == ("payments", 1, 1, 19092)
    assert spec.image == "registry.example/odradek:0.1.0-rc1"
    assert (spec.storage_size, spec.storage_class) == ("50Gi", "fast-ssd")
    assert spec.config == {"retention.ms": "86400000", "min.insync.replicas": "1"}
    assert spec.topology_key == "topology.kubernetes.io/zone"
    assert spec.authorization and spec.super_users == ("User:admin",)
    # The brokers the operator would run get flags `odradek broker` accepts.
    from odradek.cli.main import build_parser

    body["metadata"]["uid"] = "u"
    sts = cl.render_stateful_set(spec, body)
    assert validate(sts) == []  # what the operator would create from it is valid too
    pod = sts["spec"]["template"]["spec"]
    values = VALUE_SETS["one-secured-broker"]["cluster"]
    for key in ("nodeSelector", "priorityClassName", "tolerations", "affinity"):
        assert pod[key] == values[key]
    parsed = build_parser().parse_args(pod["containers"][0]["args"])
    assert parsed.port == 19092 and parsed.authorization == "on"
    assert "pod" not in one(_rendered("defaults"), "Cluster")["spec"]


def test_tls_turns_on_the_brokers_tls_with_the_release_ca() -> None:
    """Several brokers with authorization are accepted once TLS is on: the Cluster names
    the release's CA, which signs the brokers' certificate."""
    docs = render({"tls": {"enabled": True}, "cluster": {
        "brokers": 3, "authorization": {"enabled": True, "superUsers": ["User:admin"]}}})
    body = one(docs, "Cluster")
    ca = one(docs, "Secret")["metadata"]["name"]
    assert body["spec"]["tls"] == {"enabled": True, "caSecretName": ca}
    spec = cl.desired(body["spec"], body["metadata"]["name"], NAMESPACE)
    assert spec.tls is not None and spec.tls.ca_secret_name == ca and spec.authorization


def test_monitoring_selects_what_the_operator_labels() -> None:
    docs = _rendered("monitoring")
    spec = cl.desired({}, RELEASE, NAMESPACE)
    broker_labels = cl.labels(spec)
    brokers = next(m for m in of_kind(docs, "PodMonitor") if m["metadata"]["name"].endswith(
        "-brokers"))
    assert brokers["spec"]["selector"]["matchLabels"].items() <= broker_labels.items()
    # Rules and dashboards select job="odradek".
    assert brokers["spec"]["podMetricsEndpoints"][0]["relabelings"] == [
        {"targetLabel": "job", "replacement": "odradek"}]
    metrics_service = next(s for s in of_kind(docs, "Service")
                           if s["metadata"]["name"] == f"{RELEASE}-metrics")
    assert metrics_service["spec"]["selector"].items() <= broker_labels.items()
    assert metrics_service["spec"]["ports"][0]["port"] == spec.port + cl.METRICS_OFFSET
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    selected = {s["metadata"]["name"] for s in of_kind(docs, "Service")
                if monitor["spec"]["selector"]["matchLabels"].items()
                <= s["metadata"]["labels"].items()
                and s["metadata"]["labels"]["app.kubernetes.io/component"]
                in monitor["spec"]["selector"]["matchExpressions"][0]["values"]}
    assert selected == {f"{RELEASE}-metrics", f"{RELEASE}-operator-metrics"}
    assert one(docs, "PrometheusRule")["metadata"]["labels"]["release"] == "kps"
    for cm in of_kind(docs, "ConfigMap"):
        assert cm["metadata"]["namespace"] == "monitoring"
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"] == {"team": "streaming"}


def test_generated_ca_signs_user_certificates(tmp_path: Path) -> None:
    """The CA the chart makes is one the operator's signer loads (an EC key)."""
    docs = _rendered("tls-generate")
    secret = one(docs, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    # Read as the operator reads a Cluster's CA Secret (pki.ca_pair), as files too.
    pair = pki.ca_pair(secret)
    assert pair is not None
    files = users.issue_certificate("alice", *pair)
    assert b"BEGIN CERTIFICATE" in files["tls.crt"]
    for key in ("tls.crt", "tls.key"):
        (tmp_path / key).write_bytes(base64.b64decode(secret["data"][key]))
    assert load_pair(tmp_path / "tls.crt", tmp_path / "tls.key")[0] == pair[0]
    env = _env(_operator_container(docs))
    assert env["ODRADEK_OPERATOR_CA_CERT"] == "/etc/odradek/ca/tls.crt"
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "ca", "secret": {"secretName": secret["metadata"]["name"], "items": [
        {"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}]}} in volumes


def test_tls_sources() -> None:
    certificate = one(_rendered("tls-cert-manager"), "Certificate")
    assert certificate["spec"]["isCA"] is True
    assert certificate["spec"]["issuerRef"] == {"name": "root", "kind": "Issuer",
                                                "group": "cert-manager.io"}
    assert certificate["spec"]["privateKey"]["algorithm"] == "ECDSA"
    existing = _rendered("tls-existing-secret")
    assert not of_kind(existing, "Secret") and not of_kind(existing, "Certificate")
    volumes = one(existing, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert any(v.get("secret", {}).get("secretName") == "my-ca" for v in volumes)


def test_peering_objects_for_several_replicas() -> None:
    docs = _rendered("namespaces-ha")
    assert sorted(p["metadata"]["namespace"] for p in of_kind(docs, "KopfPeering")) == [
        "team-a", "team-b"]
    assert sorted(r["metadata"]["namespace"] for r in of_kind(docs, "Role")) == [
        "team-a", "team-b"]
    docs = _rendered("all-namespaces-ha")
    assert len(of_kind(docs, "ClusterKopfPeering")) == 1 and not of_kind(docs, "Role")
    assert not of_kind(_rendered("defaults"), "KopfPeering")


def test_operator_pod_placement_and_credentials() -> None:
    docs = _rendered("one-secured-broker")
    values = VALUE_SETS["one-secured-broker"]["operator"]
    pod = one(docs, "Deployment")["spec"]["template"]
    for key in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints",
                "priorityClassName"):
        assert pod["spec"][key] == values[key]
    assert pod["metadata"]["labels"]["team"] == "streaming"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    env = _env(pod["spec"]["containers"][0])
    assert env["ODRADEK_USERNAME"] == {"secretKeyRef": {"name": "odradek-admin",
                                                        "key": "username"}}
    assert env["ODRADEK_PASSWORD_FILE"] == "/etc/odradek/credentials/password"
    assert env["ODRADEK_BOOTSTRAP"] == values["bootstrap"]
    assert env["ODRADEK_OPERATOR_RESYNC_S"] == "60"


def test_bare_renders_only_the_operator() -> None:
    docs = _rendered("bare")
    assert {d["kind"] for d in docs} == {"Deployment", "Service"}
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == (
        "existing-sa")


def test_notes_say_how_to_connect() -> None:
    notes = render_files({})[f"{CHART.name}/templates/NOTES.txt"]
    assert f"ODRADEK_BOOTSTRAP={RELEASE}-bootstrap.{NAMESPACE}.svc:9092" in notes
    assert "From outside the cluster" in notes
    assert "docs/operations.md" in notes
    secured = render_files(VALUE_SETS["one-secured-broker"])[f"{CHART.name}/templates/NOTES.txt"]
    assert "payments-bootstrap.odradek.svc:19092" in secured
    assert "Authorization is on" in secured
    assert "get secret payments-admin" in secured  # the super user the operator made


@pytest.mark.parametrize(("values", "line"), [
    ({"cluster": {"brokers": 0}}, "at '/cluster/brokers': minimum: got 0, want 1"),
    ({"cluster": {"voters": 2}}, "at '/cluster/voters': value must be one of <nil>, 1, 3, 5"),
    ({"cluster": {"storage": {"size": "lots"}}},
     "at '/cluster/storage/size': 'lots' does not match pattern"),
    ({"image": {"pullPolicy": "Sometimes"}},
     "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"),
    ({"operator": {"watch": {"namespaces": ["Team_A"]}}},
     "at '/operator/watch/namespaces/0': 'Team_A' does not match pattern"),
    ({"tls": {"ca": {"source": "vault"}}},
     "at '/tls/ca/source': value must be one of 'generate', 'certManager', 'existingSecret'"),
    ({"metrics": {"podMonitor": {"enabled": "yes"}}},
     "at '/metrics/podMonitor/enabled': got string, want boolean"),
    ({"operator": {"replica": 2}}, "at '/operator': additional properties 'replica' not allowed"),
])
def test_schema_rejects_a_wrong_value_with_a_clear_message(values: dict[str, Any],
                                                           line: str) -> None:
    """The message names the key and what is wrong with it."""
    with pytest.raises(helm.HelmValuesError) as raised:
        render(values)
    text = str(raised.value)
    assert "values don't meet the specifications of the schema" in text
    assert line in text, text


@pytest.mark.parametrize(("values", "message"), [
    ({"cluster": {"brokers": 3, "authorization": {"enabled": True}}},
     "cluster.authorization.enabled needs TLS between brokers"),
    ({"cluster": {"brokers": 1, "voters": 3}}, "cluster.voters (3) may not exceed"),
    ({"tls": {"enabled": True, "ca": {"source": "existingSecret"}}},
     "tls.ca.existingSecret is needed"),
    ({"operator": {"watch": {"namespaces": ["team-a"]}}},
     "the Cluster goes into namespace odradek, which the operator does not serve"),
    ({"tls": {"enabled": True, "ca": {"source": "certManager"}}},
     "tls.ca.certManager.issuerRef.name is needed"),
])
def test_what_the_operator_would_refuse_fails_the_install(values: dict[str, Any],
                                                          message: str) -> None:
    with pytest.raises(helm.HelmError) as raised:
        render(values)
    assert message in str(raised.value)


def test_default_values_file_matches_the_schema_defaults() -> None:
    # values.yaml itself passes the schema (helm checks merged values, this the file).
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart().validate_schema(values)
