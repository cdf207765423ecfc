"""The CRDs' x-kubernetes-validations rules, evaluated with a CEL implementation (the API
server's is cel-go; kmock enforces none): each compiles and says what its message says."""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from odradek.operator import crds


def rules(schema: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, rule) for every rule, path like spec.partitions."""
    found = [(path, r["rule"]) for r in schema.get("x-kubernetes-validations", [])]
    for name, sub in (schema.get("properties") or {}).items():
        found += rules(sub, f"{path}.{name}".lstrip("."))
    if "items" in schema:
        found += rules(schema["items"], f"{path}[]")
    return found


def all_rules() -> list[tuple[str, str, str]]:
    out = []
    for kind in crds.KINDS:
        schema = crds.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        out += [(kind, path, rule) for path, rule in rules(schema)]
    return out


ENV = celpy.Environment()


def holds(kind: str, path: str, new: Any, old: Any = None) -> bool:
    """Every rule at the path holds."""
    found = [r for k, p, r in all_rules() if (k, p) == (kind, path)]
    assert found, (kind, path)
    activation = {"self": celpy.json_to_cel(new)}
    if old is not None:
        activation["oldSelf"] = celpy.json_to_cel(old)
    return all(bool(ENV.program(ENV.compile(rule)).evaluate(activation)) for rule in found)


@pytest.mark.parametrize(("kind", "path", "rule"), all_rules(),
                         ids=[f"{k}:{p}" for k, p, _ in all_rules()])
def test_every_rule_compiles(kind: str, path: str, rule: str) -> None:
    ENV.compile(rule)


def test_topic_rules() -> None:
    assert holds("Topic", "spec.partitions", 6, 3)
    assert not holds("Topic", "spec.partitions", 2, 3)
    assert not holds("Topic", "spec.topicName", "b", "a")
    assert holds("Topic", "spec.config", {"retention.ms": 1, "cleanup.policy": "compact"})
    assert not holds("Topic", "spec.config", {"Retention MS": 1})


def test_user_rules() -> None:
    path = "spec.authorization.acls[].resource"
    assert holds("User", path, {"type": "cluster"})
    assert holds("User", path, {"type": "topic", "name": "orders"})
    assert not holds("User", path, {"type": "topic"})


def test_group_reset_rules() -> None:
    reset = [r for k, p, r in all_rules() if (k, p) == ("ConsumerGroup", "spec.reset")]
    assert len(reset) == 2

    def ok(value: dict[str, Any]) -> bool:
        return all(ENV.program(ENV.compile(r)).evaluate({"self": celpy.json_to_cel(value)})
                   for r in reset)

    assert ok({"requestId": "r", "to": "earliest"})
    assert ok({"requestId": "r", "to": "timestamp", "timestamp": "2024-01-01T00:00:00Z"})
    assert not ok({"requestId": "r", "to": "timestamp"})
    assert ok({"requestId": "r", "to": "offset", "offset": 5})
    assert ok({"requestId": "r", "to": "offset", "topics": [
        {"topic": "t", "offsets": [{"partition": 0, "offset": 1}]}]})
    assert not ok({"requestId": "r", "to": "offset", "topics": [{"topic": "t"}]})
    assert not holds("ConsumerGroup", "spec.groupId", "b", "a")


def test_cluster_rules() -> None:
    assert holds("Cluster", "spec", {"brokers": 3, "voters": 3})
    assert holds("Cluster", "spec", {"brokers": 3})
    assert not holds("Cluster", "spec", {"brokers": 1, "voters": 3})


def test_external_listener_rules() -> None:
    spec = "spec.listeners.external"
    assert holds("Cluster", spec, {"type": "NodePort", "port": 9094, "nodePortBase": 31090})
    assert not holds("Cluster", spec, {"type": "NodePort", "port": 9094})
    assert not holds("Cluster", spec, {"type": "LoadBalancer", "port": 9094})
    assert holds("Cluster", spec, {"type": "LoadBalancer", "port": 9094,
                                   "advertisedHostTemplate": "b{ordinal}.example.com"})
    assert not holds("Cluster", spec, {"type": "NodePort", "port": 9094,
                                       "nodePortBase": 31090, "kafkaPort": 9094})
    listener = {"listeners": {"external": {"type": "NodePort", "port": 9092}}}
    assert not holds("Cluster", "spec", {"brokers": 3, "port": 9092, **listener})
    assert holds("Cluster", "spec", {"brokers": 3, "port": 9093, **listener})
