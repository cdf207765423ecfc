"""A Cluster's further client listeners (odradek broker --extra-listener / --advertise).

External: clients outside Kubernetes reach each broker through a Service of its own
(NodePort or LoadBalancer), and the brokers advertise those addresses to them, so that
such clients are never sent to pod addresses. Internal: in-cluster clients that the
brokers' own listener does not suit, Kafka clients and, on a TLS cluster, SCRAM clients
without a certificate (the brokers' own listener requires one: brokers dial each other on
it); reached through the client Service, advertised at the pods' DNS names. Plain
functions: the specs, the broker flags, the Services."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Body = dict[str, Any]
NAME = "external"
KAFKA_NAME = "external-kafka"
INTERNAL = "internal"
INTERNAL_KAFKA = "internal-kafka"
KAFKA_NODE_PORT_OFFSET = 100  # broker i's Kafka NodePort: nodePortBase + 100 + i
LISTENER_LABEL = "odradek.io/listener"  # on every Service of the external listener
ORDINAL_LABEL = "odradek.io/external-ordinal"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"


@dataclass(frozen=True)
class ExternalSpec:
    type: str  # NodePort | LoadBalancer
    port: int  # the brokers' container port for external gRPC clients
    kafka_port: int | None  # and for external Kafka clients (None: none)
    node_port_base: int | None  # NodePort: broker i at base + i
    host_template: str | None  # "{ordinal}" is the broker; NodePort default: the node's IP
    client_auth: str  # with TLS: none (SCRAM or tokens) | required (client certificates)


@dataclass(frozen=True)
class InternalSpec:
    port: int | None  # gRPC for clients that log in (None: none)
    kafka_port: int | None  # Kafka clients (None: none)
    client_auth: str  # with TLS: none | required


def internal_spec(spec: Mapping[str, Any]) -> InternalSpec | None:
    raw = (spec.get("listeners") or {}).get("internal")
    if not raw:
        return None
    port, kafka = raw.get("port"), raw.get("kafkaPort")
    if not port and not kafka:
        raise ValueError("listeners.internal needs port, kafkaPort or both")
    return InternalSpec(int(port) if port else None, int(kafka) if kafka else None,
                        str(raw.get("clientAuth") or "none"))


def _security(client_auth: str, tls: bool) -> str:
    return ("+mtls" if client_auth == "required" else "+tls") if tls else ""


def internal_args(spec: InternalSpec, tls: bool, host: str) -> list[str]:
    """Bound at the pod's own DNS name (`host`), which is then what they advertise."""
    security = _security(spec.client_auth, tls)
    args = []
    if spec.port is not None:
        args += ["--extra-listener", f"{INTERNAL}=grpc{security}://{host}:{spec.port}"]
    if spec.kafka_port is not None:
        args += ["--extra-listener",
                 f"{INTERNAL_KAFKA}=kafka{security}://{host}:{spec.kafka_port}"]
    return args


def internal_ports(spec: InternalSpec, service: bool) -> list[Body]:
    """Container ports, or (service) the client Service's ports."""
    ports = []
    for name, port in ((INTERNAL, spec.port), (INTERNAL_KAFKA, spec.kafka_port)):
        if port is not None:
            ports.append({"name": name, "port": port, "targetPort": name} if service
                         else {"name": name, "containerPort": port})
    return ports


def external_spec(spec: Mapping[str, Any]) -> ExternalSpec | None:
    raw = (spec.get("listeners") or {}).get("external")
    if not raw:
        return None
    kind = str(raw.get("type") or "NodePort")
    template = raw.get("advertisedHostTemplate")
    base = raw.get("nodePortBase")
    if kind == "LoadBalancer" and not template:
        raise ValueError("listeners.external of type LoadBalancer needs "
                         "advertisedHostTemplate (the DNS name of each broker's load "
                         "balancer, e.g. broker-{ordinal}.kafka.example.com)")
    if kind == "NodePort" and base is None:
        raise ValueError("listeners.external of type NodePort needs nodePortBase (broker "
                         "i is reached at nodePortBase + i)")
    return ExternalSpec(kind, int(raw.get("port") or 9094),
                        int(raw["kafkaPort"]) if raw.get("kafkaPort") else None,
                        int(base) if base is not None else None, template,
                        str(raw.get("clientAuth") or "none"))


def _advertised_port(ext: ExternalSpec, kafka: bool) -> str:
    if ext.type == "NodePort":
        assert ext.node_port_base is not None
        return f"{ext.node_port_base + (KAFKA_NODE_PORT_OFFSET if kafka else 0)}+{{id}}"
    return str(ext.kafka_port if kafka else ext.port)


def broker_args(ext: ExternalSpec, tls: bool) -> list[str]:
    security = _security(ext.client_auth, tls)
    # The pod ordinal is the broker id: "{id}" is filled in by each broker.
    host = (ext.host_template.replace("{ordinal}", "{id}") if ext.host_template
            else "$(ODRADEK_NODE_IP)")
    args = ["--extra-listener", f"{NAME}=grpc{security}://0.0.0.0:{ext.port}",
            "--advertise", f"{NAME}={host}:{_advertised_port(ext, False)}"]
    if ext.kafka_port is not None:
        args += ["--extra-listener", f"{KAFKA_NAME}=kafka{security}://0.0.0.0:{ext.kafka_port}",
                 "--advertise", f"{KAFKA_NAME}={host}:{_advertised_port(ext, True)}"]
    return args


def env(ext: ExternalSpec) -> list[Body]:
    if ext.host_template:
        return []
    return [{"name": "ODRADEK_NODE_IP", "valueFrom": {"fieldRef": {
        "fieldPath": "status.hostIP"}}}]


def container_ports(ext: ExternalSpec) -> list[Body]:
    ports = [{"name": "external", "containerPort": ext.port}]
    if ext.kafka_port is not None:
        ports.append({"name": "external-kafka", "containerPort": ext.kafka_port})
    return ports


def service_name(cluster: str, ordinal: int) -> str:
    return f"{cluster}-{ordinal}-external"


def bootstrap_service(cluster: str) -> str:
    return f"{cluster}-external-bootstrap"


def _ports(ext: ExternalSpec, ordinal: int | None) -> list[Body]:
    ports: list[Body] = [{"name": "external", "port": ext.port, "targetPort": "external"}]
    if ext.kafka_port is not None:
        ports.append({"name": "external-kafka", "port": ext.kafka_port,
                      "targetPort": "external-kafka"})
    if ext.type == "NodePort" and ordinal is not None:
        assert ext.node_port_base is not None
        ports[0]["nodePort"] = ext.node_port_base + ordinal
        if len(ports) > 1:
            ports[1]["nodePort"] = ext.node_port_base + KAFKA_NODE_PORT_OFFSET + ordinal
    return ports


def render_services(ext: ExternalSpec, cluster: str, brokers: int, selector: dict[str, str],
                    meta: Callable[[str], Body]) -> list[Body]:
    """One Service per broker (its pod alone behind it), and a bootstrap Service over all
    of them for the first connection. meta(name): the object's metadata."""
    def labelled(name: str, **extra: str) -> Body:
        m = meta(name)
        m["labels"] = {**m.get("labels", {}), LISTENER_LABEL: NAME, **extra}
        return m

    # Local: a NodePort answers only on the node of its pod, which is the address the
    # broker advertises (its node's IP), and clients keep their own address for ACLs.
    out: list[Body] = [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": labelled(service_name(cluster, i), **{ORDINAL_LABEL: str(i)}),
         "spec": {"type": ext.type, "externalTrafficPolicy": "Local",
                  "selector": {**selector, POD_NAME_LABEL: f"{cluster}-{i}"},
                  "ports": _ports(ext, i)}}
        for i in range(brokers)]
    out.append({"apiVersion": "v1", "kind": "Service",
                "metadata": labelled(bootstrap_service(cluster)),
                "spec": {"type": ext.type, "selector": selector, "ports": _ports(ext, None)}})
    return out


def stale_services(existing: Sequence[Mapping[str, Any]], ext: ExternalSpec | None,
                   brokers: int) -> list[str]:
    """The per-broker Services (by the ordinal label) no broker needs any more: past a
    scale-down, or all of them once the external listener is removed."""
    stale = []
    for svc in existing:
        meta = svc.get("metadata") or {}
        labels = meta.get("labels") or {}
        ordinal = labels.get(ORDINAL_LABEL)
        if labels.get(LISTENER_LABEL) == NAME and (
                ext is None or (ordinal is not None and int(ordinal) >= brokers)):
            stale.append(str(meta["name"]))
    return stale
