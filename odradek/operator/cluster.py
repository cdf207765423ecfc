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

from odradek.operator import external, pki, superuser
from odradek.operator.conditions import Outcome
from odradek.operator.external import ExternalSpec, InternalSpec
from odradek.operator.runtime import client_service

DATA_DIR = "/var/lib/odradek"
METRICS_OFFSET = 1000  # the broker's default metrics port is its gRPC port + 1000
# The image's non-root user (Dockerfile); fsGroup makes the volume claim writable to it.
BROKER_UID = 10001
# The operator writes a pod's rack here, read from its node's rack.topologyKey label; the
# pod template names the label in RACK_KEY_ANNOTATION so the pod handler needs nothing else.
RACK_ANNOTATION = "odradek.io/rack"
RACK_KEY_ANNOTATION = "odradek.io/rack-topology-key"
PODINFO = "/etc/odradek/pod"
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
    pod: dict[str, Any] = field(default_factory=dict)  # scheduling fields of the pod spec
    tls: pki.TLSSpec | None = None
    external: ExternalSpec | None = None
    internal: InternalSpec | None = None


def default_voters(brokers: int) -> int:
    """The first three brokers, or the first alone in a cluster of one or two (an even
    voter count would tolerate no more failures than one fewer)."""
    return 3 if brokers >= 3 else 1


def desired(spec: Mapping[str, Any], name: str, namespace: str,
            running_voters: int | None = None) -> ClusterSpec:
    """running_voters: the metadata voters of the cluster's StatefulSet, when it exists.
    They are fixed when the cluster is created (a broker refuses a data directory made
    for other voters), so they are kept whatever spec.brokers becomes."""
    brokers = int(spec.get("brokers", 3))
    asked = spec.get("voters") or None
    if running_voters is not None:
        if asked is not None and int(asked) != running_voters:
            raise SpecError(f"spec.voters is {asked}, but the cluster runs with "
                            f"{running_voters} metadata voters, which are fixed when it is "
                            "created; nothing was changed")
        voters = running_voters
    else:
        voters = int(asked or default_voters(brokers))
        if voters > brokers or voters not in (1, 3, 5):
            raise SpecError(f"voters must be 1, 3 or 5 and at most brokers ({brokers}), "
                            f"not {voters}")
    auth = spec.get("authorization") or {}
    tls = pki.tls_spec(spec, name)
    if auth.get("enabled") and brokers > 1 and tls is None:
        # Brokers authorize each other by their TLS certificates: without TLS a secured
        # cluster of several brokers would not form.
        raise SpecError("authorization.enabled needs TLS between brokers: set "
                        "tls.enabled, or use brokers: 1")
    storage = spec.get("storage") or {}
    return ClusterSpec(
        name, namespace, brokers, voters, str(spec.get("image") or "odradek:latest"),
        int(spec.get("port") or 9092), str(storage.get("size") or "10Gi"),
        storage.get("storageClassName"), dict(spec.get("resources") or {}),
        {str(k): str(v) for k, v in (spec.get("config") or {}).items()},
        (spec.get("rack") or {}).get("topologyKey"),
        tuple(auth.get("superUsers") or ()), bool(auth.get("enabled")),
        dict(spec.get("pod") or {}), tls,
        external.external_spec(spec), external.internal_spec(spec))


def voters_of(stateful_set: Mapping[str, Any] | None) -> int | None:
    """How many metadata voters the StatefulSet's brokers run with (its --voters
    argument); None when there is no StatefulSet or it names none."""
    template = ((stateful_set or {}).get("spec") or {}).get("template") or {}
    for container in (template.get("spec") or {}).get("containers") or []:
        args = list(container.get("args") or [])
        if "--voters" in args[:-1]:
            return len(str(args[args.index("--voters") + 1]).split(","))
    return None


# -- names ---------------------------------------------------------------------------------

def headless_service(name: str) -> str:
    return f"{name}-brokers"


def config_map(name: str) -> str:
    return f"{name}-config"


def broker_host(c: ClusterSpec, ordinal: int) -> str:
    """A broker's stable DNS name (StatefulSet pod behind the headless Service)."""
    return f"{c.name}-{ordinal}.{headless_service(c.name)}.{c.namespace}.svc"


def broker_address(c: ClusterSpec, ordinal: int) -> str:
    return f"{broker_host(c, ordinal)}:{c.port}"


def bootstrap(c: ClusterSpec) -> str:
    return f"{client_service(c.name)}.{c.namespace}.svc:{c.port}"


def voters(c: ClusterSpec) -> str:
    return ",".join(f"{i}={broker_address(c, i)}" for i in range(c.voters))


# -- objects -------------------------------------------------------------------------------

def labels(c: ClusterSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": "odradek", "app.kubernetes.io/instance": c.name,
            "app.kubernetes.io/component": "broker",
            "app.kubernetes.io/managed-by": "odradek-operator"}


def owner_reference(owner: Mapping[str, Any]) -> Body:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _meta(c: ClusterSpec, name: str, owner: Mapping[str, Any]) -> Body:
    return {"name": name, "namespace": c.namespace, "labels": labels(c),
            "ownerReferences": [owner_reference(owner)]}


def render_config_map(c: ClusterSpec, owner: Mapping[str, Any]) -> Body:
    props = "".join(f"{k}={v}\n" for k, v in sorted(c.config.items()))
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(c, config_map(c.name), owner),
            "data": {"broker.properties": props, "voters": voters(c)}}


def config_hash(c: ClusterSpec) -> str:
    """Changes when anything the brokers read at start changes: the pods then roll."""
    # Not the certificates: brokers reload those without a restart. Not spec.config
    # either: the brokers take it live, as cluster-wide topic defaults (config_change).
    text = json.dumps([c.image, voters(c), c.authorization, c.super_users,
                       c.tls.secret_name if c.tls else None, c.tls is not None,
                       c.topology_key, repr(c.external), repr(c.internal)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_change(current: Mapping[str, str], wanted: Mapping[str, str]
                  ) -> tuple[dict[str, str], list[str]] | None:
    """What makes the brokers' cluster-wide topic defaults exactly spec.config: (set,
    delete), or None when they already are."""
    if dict(current) == dict(wanted):
        return None
    return ({k: v for k, v in wanted.items() if current.get(k) != v},
            sorted(k for k in current if k not in wanted))


def broker_args(c: ClusterSpec) -> list[str]:
    # The kubelet expands $(ODRADEK_ADVERTISED_HOST) from the env below.
    args = ["broker", "--host", "$(ODRADEK_ADVERTISED_HOST)", "--port", str(c.port),
            "--data-dir", f"{DATA_DIR}/data", "--voters", voters(c),
            "--log-format", "json"]
    if c.tls:
        args += ["--listener", "tls", *_tls_files(), "--tls-client-auth", "required"]
    if c.authorization:
        args += ["--authorization", "on", "--super-users",
                 ";".join(dict.fromkeys((superuser.PRINCIPAL, *c.super_users))),
                 *superuser.broker_args()]
    if c.internal:
        args += external.internal_args(c.internal, c.tls is not None,
                                       "$(ODRADEK_ADVERTISED_HOST)")
    if c.external:
        args += external.broker_args(c.external, c.tls is not None)
    return args


def _tls_files() -> list[str]:
    return ["--tls-cert", f"{pki.MOUNT}/tls.crt", "--tls-key", f"{pki.MOUNT}/tls.key",
            "--tls-ca", f"{pki.MOUNT}/ca.crt"]


def _probe(c: ClusterSpec) -> Body:
    if c.tls is None:
        return {"grpc": {"port": c.port}, "periodSeconds": 5}
    # The kubelet's gRPC probe speaks no TLS: an exec probe with the brokers' own files.
    return {"exec": {"command": ["python", "-m", "odradek.cli.pod", "health", "--port",
                                 str(c.port), *_tls_files()]},
            "periodSeconds": 5, "timeoutSeconds": 5}


def _env(c: ClusterSpec) -> list[Body]:
    env: list[Body] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        # The broker registers the address it listens on, so it listens on its own stable
        # DNS name; the exec probe dials the same name.
        {"name": "ODRADEK_ADVERTISED_HOST",
         "value": f"$(POD_NAME).{headless_service(c.name)}.{c.namespace}.svc"},
        # The broker id is the pod's ordinal (the StatefulSet's pod-index label).
        {"name": "ODRADEK_BROKER_ID", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}},
    ]
    if c.external:
        env += external.env(c.external)
    if c.topology_key:
        # Resolved when the container starts, after the init container saw the annotation.
        env.append({"name": "ODRADEK_RACK", "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{RACK_ANNOTATION}']"}}})
    return env


def _rack_init(c: ClusterSpec) -> Body:
    """Waits for the operator to copy the node's rack label onto the pod: the downward API
    gives pod fields only, never the node's labels."""
    return {"name": "wait-for-rack", "image": c.image,
            "command": ["python", "-m", "odradek.cli.pod", "wait-file",
                        f"{PODINFO}/rack"],
            "resources": c.resources,
            "securityContext": {"allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "podinfo", "mountPath": PODINFO, "readOnly": True}]}


def _container(c: ClusterSpec) -> Body:
    probe = _probe(c)
    mounts: list[Body] = [{"name": "data", "mountPath": DATA_DIR}]
    if c.tls:
        mounts.append({"name": "tls", "mountPath": pki.MOUNT, "readOnly": True})
    if c.authorization:
        mounts.append(superuser.mount())
    return {
        "name": "broker", "image": c.image, "command": ["odradek"], "args": broker_args(c),
        "env": _env(c),
        "ports": [{"name": "grpc", "containerPort": c.port},
                  {"name": "metrics", "containerPort": c.port + METRICS_OFFSET},
                  *(external.internal_ports(c.internal, False) if c.internal else []),
                  *(external.container_ports(c.external) if c.external else [])],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "failureThreshold": 6, "initialDelaySeconds": 10},
        "resources": c.resources,
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
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
    volumes: list[Body] = []
    if c.tls:
        volumes.append({"name": "tls", "secret": {
            "secretName": pki.mounted_secret(c.tls, c.name), "defaultMode": 0o440}})
    if c.authorization:
        volumes.append(superuser.volume(c.name))
    annotations = {"odradek.io/config-hash": config_hash(c), "prometheus.io/scrape": "true",
                   "prometheus.io/port": str(c.port + METRICS_OFFSET)}
    if c.topology_key:
        annotations[RACK_KEY_ANNOTATION] = c.topology_key
        pod_spec["initContainers"] = [_rack_init(c)]
        volumes.append({"name": "podinfo", "downwardAPI": {"items": [{
            "path": "rack",
            "fieldRef": {"fieldPath": f"metadata.annotations['{RACK_ANNOTATION}']"}}]}})
    if volumes:
        pod_spec["volumes"] = volumes
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
            # The operator rolls the pods itself, one at a time, leadership first
            # (roll_plan); the StatefulSet controller only recreates deleted pods.
            "updateStrategy": {"type": "OnDelete"},
            "template": {
                "metadata": {"labels": labels(c), "annotations": annotations},
                "spec": pod_spec},
            "volumeClaimTemplates": [claim],
        },
    }


def render_services(c: ClusterSpec, owner: Mapping[str, Any],
                    replicas: int | None = None) -> list[Body]:
    port = [{"name": "grpc", "port": c.port, "targetPort": "grpc"},
            *(external.internal_ports(c.internal, True) if c.internal else [])]
    headless = {"apiVersion": "v1", "kind": "Service",
                "metadata": _meta(c, headless_service(c.name), owner),
                "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                         "selector": labels(c), "ports": port}}
    client = {"apiVersion": "v1", "kind": "Service",
              "metadata": _meta(c, client_service(c.name), owner),
              "spec": {"type": "ClusterIP", "selector": labels(c), "ports": port}}
    outside = (external.render_services(c.external, c.name, c.brokers if replicas is None
                                        else replicas, labels(c),
                                        lambda name: _meta(c, name, owner))
               if c.external else [])
    return [headless, client, *outside]


def render_pdb(c: ClusterSpec, owner: Mapping[str, Any]) -> Body:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _meta(c, c.name, owner),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(c)}}}


def render(c: ClusterSpec, owner: Mapping[str, Any], replicas: int | None = None
           ) -> list[Body]:
    """Every object of the cluster, in the order to apply them. replicas: the StatefulSet's
    size now, when a scale-down waits for draining (default: spec.brokers)."""
    return [render_config_map(c, owner), *render_services(c, owner, replicas),
            render_pdb(c, owner),
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
    if c.brokers < c.voters:
        return ScalePlan(current, refused=Outcome(
            "False", "ScaleDownRefused", f"{c.brokers} brokers would be fewer than the "
            f"{c.voters} metadata voters; nothing was changed"))
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


# -- rolling restarts ----------------------------------------------------------------------

ROLL_TIMEOUT_S = 300.0  # a restarted broker not ready by then stops the roll (default)


@dataclass(frozen=True)
class PodState:
    ordinal: int
    config_hash: str | None  # the pod's odradek.io/config-hash annotation
    ready: bool
    age_s: float = 0.0  # since the pod was created
    deleting: bool = False


@dataclass(frozen=True)
class RollStep:
    """What the roll does now: "done", "wait", "restart" (delete the pod `ordinal`, whose
    broker hands its leaderships off on SIGTERM) or "stuck" (a Degraded condition)."""

    action: str
    ordinal: int | None = None
    message: str = ""


def pod_state(pod: Mapping[str, Any], now: float) -> PodState | None:
    import datetime as dt

    meta = pod.get("metadata") or {}
    name = str(meta.get("name") or "")
    index = (meta.get("labels") or {}).get("apps.kubernetes.io/pod-index")
    if index is None:
        index = name.rsplit("-", 1)[-1]
    if not str(index).isdigit():
        return None
    conditions = (pod.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    created = meta.get("creationTimestamp")
    age = now - dt.datetime.fromisoformat(str(created).replace("Z", "+00:00")).timestamp() \
        if created else 0.0
    return PodState(int(index), (meta.get("annotations") or {}).get("odradek.io/config-hash"),
                    ready, age, bool(meta.get("deletionTimestamp")))


def roll_plan(c: ClusterSpec, pods: Sequence[PodState], under_replicated: int,
              timeout_s: float = ROLL_TIMEOUT_S) -> RollStep:
    """One broker at a time: nothing is restarted while a pod is missing, not ready or
    going, or while a partition is under-replicated (its replicas are then one failure
    from unavailable). Stale pods go from the highest ordinal down, so the metadata
    voters (the first ordinals) come last. A restarted pod that is not ready within
    timeout_s stops the roll: restarting another would take a second replica away."""
    want = config_hash(c)
    by_ordinal = {p.ordinal: p for p in pods if p.ordinal < c.brokers}
    stale = sorted((p.ordinal for p in by_ordinal.values() if p.config_hash != want),
                   reverse=True)
    if not stale:
        # Pods not ready on the current spec are the StatefulSet's readiness (Degraded),
        # not a roll's.
        return RollStep("done")
    for ordinal in range(c.brokers):
        pod = by_ordinal.get(ordinal)
        if pod is None or pod.deleting:
            return RollStep("wait", ordinal, f"broker {ordinal}'s pod is being recreated")
        if not pod.ready:
            if pod.config_hash == want and pod.age_s > timeout_s:
                return RollStep("stuck", ordinal, f"broker {ordinal} is not ready "
                                f"{int(pod.age_s)}s after its restart; the roll stopped")
            return RollStep("wait", ordinal, f"waiting for broker {ordinal} to be ready")
    if under_replicated:
        return RollStep("wait", None, f"{under_replicated} partitions under-replicated; "
                        f"{len(stale)} brokers still to restart")
    return RollStep("restart", stale[0], f"restarting broker {stale[0]} "
                    f"({len(stale)} to go)")


def under_replicated(partitions: Sequence[tuple[int, Sequence[int], Sequence[int]]]) -> int:
    """(leader, replicas, in-sync replicas) per partition -> how many lack a replica."""
    return sum(1 for leader, replicas, isr in partitions
               if leader < 0 or not set(replicas) <= set(isr))


def rack_of(pod: Mapping[str, Any], node: Mapping[str, Any] | None) -> str | None:
    """The rack annotation a pod should get: its node's label named by the pod's
    RACK_KEY_ANNOTATION (None: nothing to write, or already written)."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    key = annotations.get(RACK_KEY_ANNOTATION)
    if not key or node is None or annotations.get(RACK_ANNOTATION):
        return None
    value = ((node.get("metadata") or {}).get("labels") or {}).get(key)
    return str(value) if value else None
