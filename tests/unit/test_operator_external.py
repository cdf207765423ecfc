"""The external listener of a Cluster: a Service per broker and a bootstrap Service, valid
Kubernetes objects; broker flags that `odradek broker` takes and that advertise each
broker's own outside address; Services left by a scale-down or a removed listener found."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from odradek.broker.listeners import combine, parse_advertised, parse_listener
from odradek.cli.main import build_parser
from odradek.operator import cluster as cl
from odradek.operator import external

OWNER = {"apiVersion": "odradek.io/v1alpha1", "kind": "Cluster",
         "metadata": {"name": "events", "uid": "uid-1"}}
NODE_PORT = {"brokers": 3, "listeners": {"external": {
    "type": "NodePort", "nodePortBase": 31090, "kafkaPort": 9095}}}
BALANCED = {"brokers": 3, "tls": {"enabled": True}, "listeners": {"external": {
    "type": "LoadBalancer", "advertisedHostTemplate": "b{ordinal}.kafka.example.com"}}}


def rendered(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    c = cl.desired(spec, "events", "prod")
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in cl.render(c, OWNER)}


def advertised(spec: dict[str, Any], broker_id: int, node_ip: str = "10.0.0.7"
               ) -> dict[str, tuple[str, int]]:
    """What broker `broker_id` of the StatefulSet advertises, from its pod's args."""
    [container] = rendered(spec)["StatefulSet/events"]["spec"]["template"]["spec"]["containers"]
    args = [a.replace("$(ODRADEK_NODE_IP)", node_ip) for a in container["args"]]
    parsed = build_parser().parse_args(args)
    specs = combine([parse_listener(v) for v in parsed.extra_listener],
                    [parse_advertised(v, broker_id) for v in parsed.advertise],
                    has_tls=parsed.tls_cert is not None, has_ca=parsed.tls_ca is not None)
    return {s.name: (s.endpoint(0).host, s.endpoint(0).port) for s in specs}


@pytest.mark.parametrize("spec", [NODE_PORT, BALANCED], ids=["NodePort", "LoadBalancer"])
def test_every_object_is_valid(spec: dict[str, Any]) -> None:
    objects = rendered(spec)
    assert {"Service/events-0-external", "Service/events-1-external",
            "Service/events-2-external", "Service/events-external-bootstrap"} <= set(objects)
    for obj in objects.values():
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)


def test_a_node_port_per_broker_and_the_node_address_advertised() -> None:
    objects = rendered(NODE_PORT)
    svc = objects["Service/events-1-external"]["spec"]
    assert svc["type"] == "NodePort" and svc["externalTrafficPolicy"] == "Local"
    assert svc["selector"]["statefulset.kubernetes.io/pod-name"] == "events-1"
    assert [(p["name"], p["nodePort"]) for p in svc["ports"]] == [
        ("external", 31091), ("external-kafka", 31191)]
    assert advertised(NODE_PORT, 1) == {"external": ("10.0.0.7", 31091),
                                        "external-kafka": ("10.0.0.7", 31191)}
    [container] = objects["StatefulSet/events"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
           for e in container["env"]}
    assert env["ODRADEK_NODE_IP"] == "status.hostIP"
    assert {"external", "external-kafka"} <= {p["name"] for p in container["ports"]}


def test_load_balancers_advertise_the_names_given() -> None:
    assert advertised(BALANCED, 2) == {"external": ("b2.kafka.example.com", 9094)}
    [container] = rendered(BALANCED)["StatefulSet/events"]["spec"]["template"]["spec"][
        "containers"]
    # TLS with the cluster's certificate, and no client certificate asked (SCRAM).
    assert "external=grpc+tls://0.0.0.0:9094" in container["args"]
    assert rendered(BALANCED)["Service/events-0-external"]["spec"]["type"] == "LoadBalancer"


def test_the_listener_changes_roll_the_brokers() -> None:
    plain = cl.config_hash(cl.desired({"brokers": 3}, "events", "prod"))
    assert cl.config_hash(cl.desired(NODE_PORT, "events", "prod")) != plain


@pytest.mark.parametrize(("listener", "words"), [
    ({"type": "NodePort"}, "needs nodePortBase"),
    ({"type": "LoadBalancer"}, "needs advertisedHostTemplate"),
])
def test_incomplete_listeners_are_refused(listener: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        cl.desired({"brokers": 3, "listeners": {"external": listener}}, "events", "prod")


def test_services_no_broker_needs_are_found() -> None:
    c = cl.desired(NODE_PORT, "events", "prod")
    services = [o for o in cl.render(c, OWNER) if o["kind"] == "Service"]
    assert external.stale_services(services, c.external, 3) == []
    assert external.stale_services(services, c.external, 2) == ["events-2-external"]
    assert sorted(external.stale_services(services, None, 3)) == [
        "events-0-external", "events-1-external", "events-2-external",
        "events-external-bootstrap"]


INTERNAL = {"brokers": 3, "tls": {"enabled": True},
            "listeners": {"internal": {"port": 9094, "kafkaPort": 9095}}}


def test_an_internal_listener_for_scram_and_kafka_clients() -> None:
    objects = rendered(INTERNAL)
    for obj in objects.values():
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    client = objects["Service/events-bootstrap"]["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in client] == [
        ("grpc", 9092), ("internal", 9094), ("internal-kafka", 9095)]
    [container] = objects["StatefulSet/events"]["spec"]["template"]["spec"]["containers"]
    args = [a.replace("$(ODRADEK_ADVERTISED_HOST)", "events-1.events-brokers.prod.svc")
            for a in container["args"]]
    parsed = build_parser().parse_args(args)
    specs = combine([parse_listener(v) for v in parsed.extra_listener], [], has_tls=True,
                    has_ca=True)
    # TLS without client certificates; advertised at the pod's own name.
    assert [(s.name, s.protocol, s.security, s.bind_host, s.bind_port)
            for s in specs] == [
        ("internal", "grpc", "tls", "events-1.events-brokers.prod.svc", 9094),
        ("internal-kafka", "kafka", "tls", "events-1.events-brokers.prod.svc", 9095)]
    with pytest.raises(ValueError, match="needs port, kafkaPort or both"):
        cl.desired({"brokers": 3, "listeners": {"internal": {"clientAuth": "none"}}},
                   "events", "prod")
