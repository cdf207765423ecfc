"""Cluster resources, as plain functions: the Kubernetes objects a Cluster renders
(StatefulSet, headless and client Services, PodDisruptionBudget, ConfigMap), all owned by
it, and the status read back from the StatefulSet."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from odradek.operator.conditions import Outcome
from odradek.operator.runtime import client_service

DATA_DIR = "/var/lib/odradek"
METRICS_OFFSET = 1000  # the broker's default metrics port is its gRPC port + 1000
# The image's non-root user (Dockerfile); fsGroup makes the volume claim writable to it.
BROKER_UID = 10001
Body = dict[str, Any]


class SpecError(ValueError):
    """A Cluster the operator will not render (nothing is changed)."""


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    namespace: str
    brokers: int
    voters: int
    image: str
    port: int
    storage_size: str
    storage_class: str | None
    resources: dict[str, Any]
    config: dict[str, str] = field(default_factory=dict)
    topology_key: str | None = None
    super_users: tuple[str, ...] = ()
    authorization: bool = False
    explicit_voters: bool = False  # spec.voters given (else the first min(3, brokers))
    pod: dict[str, Any] = field(default_factory=dict)  # scheduling fields of the pod spec


def default_voters(brokers: int) -> int:
    """The first three brokers, or the first alone in a cluster of one or two (an even
    voter count would tolerate no more failures than one fewer)."""
    return 3 if brokers >= 3 else 1


def desired(spec: Mapping[str, Any], name: str, namespace: str) -> ClusterSpec:
    brokers = int(spec.get("brokers", 3))
    voters = int(spec.get("voters") or default_voters(brokers))
    if voters > brokers or voters not in (1, 3, 5):
        raise SpecError(f"voters must be 1, 3 or 5 and at most brokers ({brokers}), "
                        f"not {voters}")
    auth = spec.get("authorization") or {}
    if auth.get("enabled") and brokers > 1:
        # Brokers authorize each other by their TLS certificates; the Cluster renders no
        # TLS yet, so a secured cluster of several brokers would not form.
        raise SpecError("authorization.enabled needs TLS between brokers, which the "
                        "operator does not render yet: use brokers: 1 or authorization off")
    storage = spec.get("storage") or {}
    return ClusterSpec(
        name, namespace, brokers, voters, str(spec.get("image") or "odradek:latest"),
        int(spec.get("port") or 9092), str(storage.get("size") or "10Gi"),
        storage.get("storageClassName"), dict(spec.get("resources") or {}),
        {str(k): str(v) for k, v in (spec.get("config") or {}).items()},
        (spec.get("rack") or {}).get("topologyKey"),
        tuple(auth.get("superUsers") or ()), bool(auth.get("enabled")),
        spec.get("voters") is not None, dict(spec.get("pod") or {}))


# -- names ---------------------------------------------------------------------------------

def headless_service(name: str) -> str:
    return f"{name}-brokers"


def config_map(name: str) -> str:
    return f"{name}-config"


def broker_address(c: ClusterSpec, ordinal: int) -> str:
    """A broker's stable DNS name (StatefulSet pod behind the headless Service)."""
    return f"{c.name}-{ordinal}.{headless_service(c.name)}.{c.namespace}.svc:{c.port}"


def bootstrap(c: ClusterSpec) -> str:
    return f"{client_service(c.name)}.{c.namespace}.svc:{c.port}"


def voters(c: ClusterSpec) -> str:
    return ",".join(f"{i}={broker_address(c, i)}" for i in range(c.voters))


# -- objects -------------------------------------------------------------------------------

def labels(c: ClusterSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": "odradek", "app.kubernetes.io/instance": c.name,
            "app.kubernetes.io/component": "broker",
            "app.kubernetes.io/managed-by": "odradek-operator"}


def _meta(c: ClusterSpec, name: str, owner: Mapping[str, Any]) -> Body:
    return {"name": name, "namespace": c.namespace, "labels": labels(c),
            "ownerReferences": [{
                "apiVersion": owner["apiVersion"], "kind": owner["kind"],
                "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                "controller": True, "blockOwnerDeletion": True}]}


def render_config_map(c: ClusterSpec, owner: Mapping[str, Any]) -> Body:
    props = "".join(f"{k}={v}\n" for k, v in sorted(c.config.items()))
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(c, config_map(c.name), owner),
            "data": {"broker.properties": props, "voters": voters(c)}}


def config_hash(c: ClusterSpec) -> str:
    """Changes when anything the brokers read at start changes: the pods then roll."""
    text = json.dumps([c.image, c.config, voters(c), c.authorization, c.super_users],
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def broker_args(c: ClusterSpec) -> list[str]:
    # The broker registers the address it listens on, so it listens on its own stable DNS
    # name: $(POD_NAME) is expanded by the kubelet from the env below.
    args = ["broker", "--host", f"$(POD_NAME).{headless_service(c.name)}.{c.namespace}.svc",
            "--port", str(c.port), "--data-dir", f"{DATA_DIR}/data", "--voters", voters(c),
            "--log-format", "json"]
    for key, value in sorted(c.config.items()):
        args += ["--config", f"{key}={value}"]
    if c.authorization:
        args += ["--authorization", "on", "--super-users", ";".join(c.super_users)]
    return args


def _container(c: ClusterSpec) -> Body:
    probe = {"grpc": {"port": c.port}, "periodSeconds": 5}
    return {
        "name": "broker", "image": c.image, "command": ["odradek"], "args": broker_args(c),
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            # The broker id is the pod's ordinal (the StatefulSet's pod-index label).
            {"name": "ODRADEK_BROKER_ID", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}},
        ],
        "ports": [{"name": "grpc", "containerPort": c.port},
                  {"name": "metrics", "containerPort": c.port + METRICS_OFFSET}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "failureThreshold": 6, "initialDelaySeconds": 10},
        "resources": c.resources,
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}],
    }


def render_stateful_set(c: ClusterSpec, owner: Mapping[str, Any],
                        replicas: int | None = None) -> Body:
    pod_spec: Body = {"containers": [_container(c)], "terminationGracePeriodSeconds": 60,
                      "securityContext": {
                          "runAsNonRoot": True, "runAsUser": BROKER_UID,
                          "runAsGroup": BROKER_UID, "fsGroup": BROKER_UID,
                          "seccompProfile": {"type": "RuntimeDefault"}}}
    spread = list(c.pod.get("topologySpreadConstraints") or [])
    if c.topology_key:
        spread.insert(0, {
            "maxSkew": 1, "topologyKey": c.topology_key, "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": labels(c)}})
    if spread:
        pod_spec["topologySpreadConstraints"] = spread
    for key in ("nodeSelector", "affinity", "tolerations", "priorityClassName"):
        if c.pod.get(key):
            pod_spec[key] = c.pod[key]
    claim: Body = {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": c.storage_size}}}}
    if c.storage_class:
        claim["spec"]["storageClassName"] = c.storage_class
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": _meta(c, c.name, owner),
        "spec": {
            "replicas": c.brokers if replicas is None else replicas,
            "serviceName": headless_service(c.name),
            # Brokers find each other by DNS before any is ready: start them together.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels(c)},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels(c), "annotations": {
                    "odradek.io/config-hash": config_hash(c),
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(c.port + METRICS_OFFSET)}},
                "spec": pod_spec},
            "volumeClaimTemplates": [claim],
        },
    }


def render_services(c: ClusterSpec, owner: Mapping[str, Any]) -> list[Body]:
    port = [{"name": "grpc", "port": c.port, "targetPort": "grpc"}]
    headless = {"apiVersion": "v1", "kind": "Service",
                "metadata": _meta(c, headless_service(c.name), owner),
                "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                         "selector": labels(c), "ports": port}}
    client = {"apiVersion": "v1", "kind": "Service",
              "metadata": _meta(c, client_service(c.name), owner),
              "spec": {"type": "ClusterIP", "selector": labels(c), "ports": port}}
    return [headless, client]


def render_pdb(c: ClusterSpec, owner: Mapping[str, Any]) -> Body:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _meta(c, c.name, owner),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(c)}}}


def render(c: ClusterSpec, owner: Mapping[str, Any], replicas: int | None = None
           ) -> list[Body]:
    """Every object of the cluster, in the order to apply them. replicas: the StatefulSet's
    size now, when a scale-down waits for draining (default: spec.brokers)."""
    return [render_config_map(c, owner), *render_services(c, owner), render_pdb(c, owner),
            render_stateful_set(c, owner, replicas)]


# -- scaling down --------------------------------------------------------------------------

@dataclass(frozen=True)
class ScalePlan:
    replicas: int  # the StatefulSet's size to render now
    drain: tuple[int, ...] = ()  # brokers whose replicas must move away first
    refused: Outcome | None = None
    waiting: str = ""


def scale_plan(c: ClusterSpec, current: int | None, hosted: Mapping[int, int],
               max_replication_factor: int) -> ScalePlan:
    """A scale-down drains the brokers that will go (their replicas moved elsewhere by
    the brokers' DrainBroker), and only when none holds a replica does the StatefulSet
    shrink. Refused below the metadata voters or the largest replication factor in use.
    hosted: broker id -> replicas it holds."""
    if current is None or c.brokers >= current:
        return ScalePlan(c.brokers)
    # Voters are not moved: the ones running now must all stay.
    running_voters = c.voters if c.explicit_voters else default_voters(current)
    if c.brokers < running_voters:
        return ScalePlan(current, refused=Outcome(
            "False", "ScaleDownRefused", f"{c.brokers} brokers would be fewer than the "
            f"{running_voters} metadata voters; nothing was changed"))
    if c.brokers < max_replication_factor:
        return ScalePlan(current, refused=Outcome(
            "False", "ScaleDownRefused", f"a topic has replication factor "
            f"{max_replication_factor}, more than {c.brokers} brokers; nothing was changed"))
    going = tuple(range(c.brokers, current))
    left = {b: hosted[b] for b in going if hosted.get(b)}
    if left:
        return ScalePlan(current, drain=tuple(left), waiting=f"draining brokers "
                         f"{sorted(left)}: {sum(left.values())} replicas still on them")
    return ScalePlan(c.brokers)


# -- status --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClusterState:
    ready: int
    updated: int
    replicas: int
    current: bool  # the StatefulSet controller has seen the latest spec


def state_of(stateful_set: Mapping[str, Any] | None) -> ClusterState:
    if not stateful_set:
        return ClusterState(0, 0, 0, False)
    st = stateful_set.get("status") or {}
    generation = (stateful_set.get("metadata") or {}).get("generation")
    return ClusterState(int(st.get("readyReplicas") or 0), int(st.get("updatedReplicas") or 0),
                        int(st.get("replicas") or 0),
                        st.get("observedGeneration") == generation)


def conditions(c: ClusterSpec, s: ClusterState) -> dict[str, Outcome]:
    """Ready: every broker ready on the current spec; Reconciling: a change is rolling
    out; Degraded: rolled out, yet some broker is not ready."""
    rolling = not s.current or s.updated < c.brokers or s.replicas != c.brokers
    ready = s.ready >= c.brokers and not rolling
    return {
        "Ready": Outcome("True", "BrokersReady", f"{s.ready}/{c.brokers} brokers ready")
        if ready else Outcome("False", "BrokersNotReady", f"{s.ready}/{c.brokers} brokers "
                              "ready"),
        "Reconciling": Outcome("True", "RollingOut", f"{s.updated}/{c.brokers} brokers on the "
                               "current spec") if rolling else Outcome("False", "Done"),
        "Degraded": Outcome("True", "BrokersNotReady", f"{c.brokers - s.ready} brokers not "
                            "ready") if not rolling and s.ready < c.brokers
        else Outcome("False", "AllReady" if ready else "RollingOut"),
    }


# -- scaling up ----------------------------------------------------------------------------

Placement = tuple[str, int, tuple[int, ...]]  # topic, partition, replicas


def balance_moves(placements: Sequence[Placement], brokers: Sequence[int]) -> list[Placement]:
    """Reassignments that move replicas from the most to the least loaded brokers until
    replica counts differ by at most one; a partition moves at most once per plan, and a
    follower is moved rather than the preferred leader when there is a choice."""
    load = Counter(dict.fromkeys(brokers, 0))
    load.update(b for _, _, replicas in placements for b in replicas if b in load)
    current = {(t, p): r for t, p, r in placements}
    moved: dict[tuple[str, int], tuple[int, ...]] = {}
    while brokers:
        high = max(brokers, key=lambda b: (load[b], b))
        low = min(brokers, key=lambda b: (load[b], b))
        if load[high] - load[low] <= 1:
            break
        candidates = [k for k, r in current.items()
                      if k not in moved and high in r and low not in r]
        if not candidates:
            break
        key = min(candidates, key=lambda k: (current[k][0] == high, k))
        moved[key] = tuple(low if b == high else b for b in current[key])
        load[high] -= 1
        load[low] += 1
    return [(t, p, r) for (t, p), r in sorted(moved.items())]


def needs_balance(placements: Sequence[Placement], brokers: Sequence[int]) -> bool:
    """Only a broker that holds nothing (new after a scale-up) starts a rebalance, so that
    placements made by hand are not fought at every resync."""
    hosting = {b for _, _, replicas in placements for b in replicas}
    return bool(placements) and any(b not in hosting for b in brokers)
