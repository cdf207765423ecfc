"""The CRDs in deploy/crds are current, are valid CustomResourceDefinitions, and the
examples in deploy/examples validate against them; bad resources are rejected."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from odradek.operator import crds

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "deploy" / "examples").glob("*.yaml"))


def _gen() -> Any:
    spec = importlib.util.spec_from_file_location("gen_crds", ROOT / "scripts" / "gen_crds.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_crds_are_fresh(tmp_path: Path) -> None:
    written = _gen().generate(tmp_path)
    assert {p.name for p in written} == {p.name for p in (ROOT / "deploy/crds").glob("*.yaml")}
    for path in written:
        committed = ROOT / "deploy" / "crds" / path.name
        assert committed.read_text() == path.read_text(), (
            f"deploy/crds/{path.name} is stale: run `python scripts/gen_crds.py`")


@pytest.mark.parametrize("name", sorted(crds.all_crds()))
def test_crd_is_a_valid_kubernetes_object(name: str) -> None:
    definition = yaml.safe_load((ROOT / "deploy" / "crds" / name).read_text())
    kubernetes_validate.validate(definition, kubernetes_validate.latest_version(), strict=True)


def _json_schema(schema: Any) -> Any:
    """OpenAPI v3 as Kubernetes reads it, in JSON-schema terms: int-or-string is the one
    Kubernetes extension here that changes what validates (the rest are CEL and list
    semantics, checked by the API server)."""
    if isinstance(schema, list):
        return [_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _json_schema(v) for k, v in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


def _validator(kind: str) -> jsonschema.Draft7Validator:
    schema = crds.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return jsonschema.Draft7Validator(_json_schema(schema),
                                      format_checker=jsonschema.FormatChecker())


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            docs.append((f"{path.name}:{doc['metadata']['name']}", doc))
    return docs


@pytest.mark.parametrize(("label", "doc"), _documents(), ids=[d[0] for d in _documents()])
def test_example_validates_against_its_crd(label: str, doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == crds.API_VERSION
    errors = [e.message for e in _validator(doc["kind"]).iter_errors(doc)]
    assert not errors, f"{label}: {errors}"


def test_examples_cover_every_kind_and_cleanup_policy() -> None:
    docs = [d for _, d in _documents()]
    assert {d["kind"] for d in docs} == set(crds.KINDS)
    policies = {d["spec"].get("config", {}).get("cleanup.policy")
                for d in docs if d["kind"] == "Topic"}
    assert {"delete", "compact", "compact,delete"} <= policies
    assert any("reset" in d["spec"] for d in docs if d["kind"] == "ConsumerGroup")
    assert all(d["spec"]["authorization"]["acls"] for d in docs if d["kind"] == "User")


TOPIC = {"apiVersion": crds.API_VERSION, "kind": "Topic", "metadata": {"name": "t"},
         "spec": {"partitions": 3, "replicationFactor": 3, "config": {"retention.ms": 1000}}}


@pytest.mark.parametrize(("path", "value"), [
    (("spec", "partitions"), 0),
    (("spec", "partitions"), "3"),
    (("spec", "replicationFactor"), 8),
    (("spec", "topicName"), "bad name!"),
    (("spec", "topicName"), "x" * 250),
    (("spec", "clusterRef"), "Not_A_Label"),
    (("spec", "config"), {"retention.ms": {"nested": 1}}),
])
def test_bad_topics_are_rejected(path: tuple[str, ...], value: Any) -> None:
    doc = copy.deepcopy(TOPIC)
    doc[path[0]][path[1]] = value
    assert list(_validator("Topic").iter_errors(doc))


def test_bad_user_and_group_are_rejected() -> None:
    user = {"spec": {"authentication": {"type": "plain"}}}
    assert list(_validator("User").iter_errors(user))
    user = {"spec": {"authentication": {"type": "scram-sha-512"}, "authorization": {"acls": [
        {"resource": {"type": "topic", "name": "t"}, "operations": ["fly"]}]}}}
    assert list(_validator("User").iter_errors(user))
    group = {"spec": {"reset": {"requestId": "r", "to": "yesterday"}}}
    assert list(_validator("ConsumerGroup").iter_errors(group))
    cluster = {"spec": {"brokers": 0}}
    assert list(_validator("Cluster").iter_errors(cluster))


def _rules(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        found = [r["rule"] for r in schema.get("x-kubernetes-validations", [])]
        for value in schema.values():
            found += _rules(value)
        return found
    if isinstance(schema, list):
        return [r for item in schema for r in _rules(item)]
    return []


def test_cel_rules_where_the_brokers_cannot_help() -> None:
    topic_rules = _rules(crds.crd("Topic"))
    assert "self >= oldSelf" in topic_rules  # partitions may not decrease
    assert "self == oldSelf" in topic_rules  # topicName is immutable
    assert _rules(crds.crd("User")) and _rules(crds.crd("ConsumerGroup"))


def test_printer_columns() -> None:
    def names(kind: str) -> list[str]:
        version = crds.crd(kind)["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        return [c["name"] for c in version["additionalPrinterColumns"]]

    assert names("Topic") == ["Partitions", "Replicas", "Ready", "Age"]
    assert names("ConsumerGroup")[:3] == ["State", "Members", "Lag"]
