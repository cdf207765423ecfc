"""A test kubelet for kmock: the StatefulSet controller and the kubelet in one loop, so
that what the operator renders runs as real `odradek broker` processes.

It makes the pods of each StatefulSet from its template (ordinal names, the pod-index
label, a node), deletes those above its replicas, runs one broker per pod with the args
and env of the pod spec (fieldRefs and $(VAR) expanded; the pods' DNS names, ports and
data directory remapped to 127.0.0.1, free ports and a temporary directory that outlives
the pod, as its volume claim would), marks a pod Ready from the broker's gRPC health,
writes the StatefulSet's status, and stops the broker (SIGTERM) when its pod is deleted.
Init containers that wait for a downward API file (the rack) hold the broker back until
the annotation behind the file is set. Secret volumes are written out under the pod's
directory from the Secret as the API holds it when the pod starts; a TLS broker checks its
peers' certificates against a pod's DNS name (ODRADEK_BROKER_TLS_PEER_SERVER_NAME), as its
addresses here are 127.0.0.1, and so does the kubelet's readiness check.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock

from odradek.security.tls import ClientTLS
from tests.brokers import BrokerProcess, free_port
from tests.kube import NAMESPACE, objects_of

NODE = "kmock-node"
ZONE = "zone-a"
POLL_S = 0.1
# Flags the kubelet sets itself: a pod's values are Kubernetes addresses and paths.
OWN_FLAGS = {"--host", "--port", "--data-dir", "--metrics-port"}
# The external listener's "outside" here: another loopback address, a port per pod.
OUTSIDE_HOST = "127.0.0.2"
LISTENER_FLAGS = {"--extra-listener", "--advertise"}


@dataclass
class Running:
    uid: str
    broker: BrokerProcess
    ready: bool = False


@dataclass
class Kubelet:
    kube: kmock.KubernetesEmulator
    root: Path
    namespace: str = NAMESPACE
    ports: dict[str, int] = field(default_factory=dict)
    running: dict[str, Running] = field(default_factory=dict)
    starts: dict[str, int] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)  # pods whose broker is never started
    most_not_ready: int = 0  # the most pods not ready at once, once all had been ready
    _all_ready_once: bool = False
    _task: asyncio.Task[None] | None = None

    # -- addresses -------------------------------------------------------------------

    def port(self, pod: str) -> int:
        """A pod's port, the same across its restarts (its address is in the voters)."""
        if pod not in self.ports:
            self.ports[pod] = free_port()
        return self.ports[pod]

    def bootstrap(self, sts: str, replicas: int) -> str:
        return ",".join(f"127.0.0.1:{self.port(f'{sts}-{i}')}" for i in range(replicas))

    def _remap(self, text: str, headless: str) -> str:
        """<pod>.<headless>.<ns>.svc[:port] -> 127.0.0.1:<the pod's port>."""
        domain = re.escape(f".{headless}.{self.namespace}.svc")
        return re.sub(rf"([a-z0-9-]+){domain}(:\d+)?",
                      lambda m: f"127.0.0.1:{self.port(m.group(1))}", text)

    def outside_address(self, pod: str, listener: str) -> str:
        """Where a pod's further listener is reached here (its NodePort, in a cluster)."""
        return f"{OUTSIDE_HOST}:{self.port(f'{pod}/{listener}')}"

    def _outside(self, pod: str, value: str) -> str:
        """A further listener's bind or advertised address -> the pod's outside address:
        every pod binds the same port in a cluster, and NodePorts differ by pod."""
        name = value.split("=", 1)[0]
        return re.sub(r"(//)?[^/=]*:[^:]+$", lambda m: (m.group(1) or "")
                      + self.outside_address(pod, name), value)

    # -- the loop ---------------------------------------------------------------------

    async def __aenter__(self) -> Kubelet:
        self.kube.objects["v1/nodes", None, NODE] = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"topology.kubernetes.io/zone": ZONE}}}
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(asyncio.to_thread(r.broker.stop) for r in self.running.values()))

    async def _loop(self) -> None:
        while True:
            await self.step()
            await asyncio.sleep(POLL_S)

    async def step(self) -> None:
        pods = {p["metadata"]["name"]: p for p in objects_of(self.kube, "v1/pods")}
        # Deleted pods first: their brokers stop (SIGTERM) before a new pod of that name.
        for name in [n for n, r in self.running.items()
                     if n not in pods or pods[n]["metadata"]["uid"] != r.uid]:
            gone = self.running.pop(name)
            await asyncio.to_thread(gone.broker.stop)
        for sts in objects_of(self.kube, "apps/v1/statefulsets"):
            await self._sync_stateful_set(sts, pods)
        pods = {p["metadata"]["name"]: p for p in objects_of(self.kube, "v1/pods")}
        for name, pod in pods.items():
            if name not in self.running and name not in self.broken:
                self._start(pod)
        await self._report(pods)

    async def _sync_stateful_set(self, sts: dict[str, Any],
                                 pods: Mapping[str, dict[str, Any]]) -> None:
        name = sts["metadata"]["name"]
        replicas = int(sts["spec"]["replicas"])
        for ordinal in range(replicas):
            if f"{name}-{ordinal}" not in pods:
                await self._create_pod(sts, ordinal)
        for pod_name, pod in pods.items():
            index = pod["metadata"].get("labels", {}).get("apps.kubernetes.io/pod-index")
            if pod_name.startswith(f"{name}-") and index is not None and int(index) >= replicas:
                await self.kube.delete(f"/api/v1/namespaces/{self.namespace}/pods/{pod_name}")

    async def _create_pod(self, sts: dict[str, Any], ordinal: int) -> None:
        template = sts["spec"]["template"]
        meta = template.get("metadata") or {}
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"{sts['metadata']['name']}-{ordinal}", "namespace": self.namespace,
            "labels": {**(meta.get("labels") or {}),
                       "apps.kubernetes.io/pod-index": str(ordinal)},
            "annotations": dict(meta.get("annotations") or {})},
            "spec": {**template["spec"], "nodeName": NODE},
            "status": {"phase": "Pending"}}
        reply = await self.kube.post(f"/api/v1/namespaces/{self.namespace}/pods", json=body)
        assert reply.status in (200, 201, 409), await reply.text()

    # -- one pod ----------------------------------------------------------------------

    def _field(self, pod: Mapping[str, Any], path: str) -> str | None:
        meta = pod["metadata"]
        found = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if found:
            return (meta.get(found.group(1)) or {}).get(found.group(2))
        return {"metadata.name": meta["name"], "metadata.namespace": self.namespace}.get(path)

    def _env(self, pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), ""),
                                          str(var["value"]))
            else:
                value = self._field(pod, var["valueFrom"]["fieldRef"]["fieldPath"])
                if value is not None:
                    env[var["name"]] = value
        return env

    def _held_by_init(self, pod: Mapping[str, Any]) -> bool:
        """An init container waiting for a downward API file whose field is still empty."""
        spec = pod["spec"]
        files = {f"{mount['mountPath']}/{item['path']}": item["fieldRef"]["fieldPath"]
                 for container in spec.get("initContainers") or []
                 for mount in container.get("volumeMounts") or []
                 for volume in spec.get("volumes") or []
                 if volume["name"] == mount["name"] and "downwardAPI" in volume
                 for item in volume["downwardAPI"]["items"]}
        for container in spec.get("initContainers") or []:
            command = container.get("command") or []
            if "wait-file" in command and not self._field(pod, files[command[-1]]):
                return True
        return False

    def _secret_mounts(self, pod: Mapping[str, Any], container: Mapping[str, Any]
                       ) -> dict[str, Path] | None:
        """Each Secret volume's mount path -> a directory holding the Secret's keys as
        files; None while a Secret is missing (the pod waits, as a real one would)."""
        volumes = {v["name"]: v["secret"]["secretName"]
                   for v in pod["spec"].get("volumes") or [] if "secret" in v}
        mounts: dict[str, Path] = {}
        for mount in container.get("volumeMounts") or []:
            if mount["name"] not in volumes:
                continue
            key = (kmock.resource("v1/secrets"), self.namespace, volumes[mount["name"]])
            if key not in self.kube.objects or self.kube.objects[key].deleted:
                return None
            directory = self.root / f"{pod['metadata']['name']}-{mount['name']}"
            directory.mkdir(parents=True, exist_ok=True)
            for item, value in (self.kube.objects[key].raw.get("data") or {}).items():
                (directory / item).write_bytes(base64.b64decode(value))
            mounts[mount["mountPath"]] = directory
        return mounts

    def _start(self, pod: dict[str, Any]) -> None:
        spec = pod["spec"]
        if self._held_by_init(pod):
            return
        [container] = spec["containers"]
        mounts = self._secret_mounts(pod, container)
        if mounts is None:
            return
        name = pod["metadata"]["name"]
        env = self._env(pod, container)
        headless = _headless(container)
        args = [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), ""), a)
                for a in container["args"][1:]]  # past "broker"
        for path, directory in mounts.items():
            args = [a.replace(path, str(directory)) for a in args]
        kept: list[str] = []
        skip = False
        for arg in args:
            if skip:
                skip = False
            elif arg in OWN_FLAGS:
                skip = True
            elif kept and kept[-1] in LISTENER_FLAGS:
                kept.append(self._outside(name, arg))
            else:
                kept.append(self._remap(arg, headless))
        # Any pod's DNS name is in the brokers' certificate (a wildcard over the headless
        # Service), and the brokers dial 127.0.0.1 here.
        server_name = f"{name}.{headless}.{self.namespace}.svc"
        broker = BrokerProcess(self.root / name, self.port(name), kept,
                               tls=_client_tls(kept, server_name))
        broker.env = {k: v for k, v in env.items() if k.startswith("ODRADEK_")}
        if broker.tls is not None:
            broker.env["ODRADEK_BROKER_TLS_PEER_SERVER_NAME"] = server_name
        broker.start(wait=False)
        self.running[name] = Running(pod["metadata"]["uid"], broker)
        self.starts[name] = self.starts.get(name, 0) + 1

    # -- status -----------------------------------------------------------------------

    async def _report(self, pods: Mapping[str, dict[str, Any]]) -> None:
        for name, pod in pods.items():
            run = self.running.get(name)
            ready = run is not None and await asyncio.to_thread(run.broker.serving)
            if run is not None:
                run.ready = ready
            was = any(c.get("type") == "Ready" and c.get("status") == "True"
                      for c in (pod.get("status") or {}).get("conditions") or [])
            if ready != was or not pod.get("status", {}).get("conditions"):
                await self._patch_status(f"/api/v1/namespaces/{self.namespace}/pods/{name}", {
                    "phase": "Running" if run else "Pending",
                    "conditions": [{"type": "Ready", "status": str(ready)}]})
        not_ready = sum(1 for n in pods if not (self.running.get(n) and self.running[n].ready))
        if pods and not not_ready:
            self._all_ready_once = True
        if self._all_ready_once:
            self.most_not_ready = max(self.most_not_ready, not_ready)
        for sts in objects_of(self.kube, "apps/v1/statefulsets"):
            await self._report_stateful_set(sts, pods)

    async def _report_stateful_set(self, sts: dict[str, Any],
                                   pods: Mapping[str, dict[str, Any]]) -> None:
        name = sts["metadata"]["name"]
        mine = [p for n, p in pods.items() if n.startswith(f"{name}-")]
        want = (sts["spec"]["template"].get("metadata") or {}).get("annotations") or {}
        status = {
            "replicas": len(mine),
            "readyReplicas": sum(1 for p in mine if self.running.get(p["metadata"]["name"])
                                 and self.running[p["metadata"]["name"]].ready),
            "updatedReplicas": sum(1 for p in mine if (p["metadata"].get("annotations") or {})
                                   .get("odradek.io/config-hash") ==
                                   want.get("odradek.io/config-hash")),
            "observedGeneration": sts["metadata"].get("generation")}
        if {k: (sts.get("status") or {}).get(k) for k in status} != status:
            await self._patch_status(
                f"/apis/apps/v1/namespaces/{self.namespace}/statefulsets/{name}", status)

    async def _patch_status(self, url: str, status: dict[str, Any]) -> None:
        reply = await self.kube.patch(f"{url}/status", json={"status": status},
                                      headers={"Content-Type": "application/merge-patch+json"})
        assert reply.status in (200, 404), await reply.text()


def _headless(container: Mapping[str, Any]) -> str:
    """The headless Service, from the broker's --host $(POD_NAME).<headless>.<ns>.svc."""
    for var in container.get("env") or []:
        value = str(var.get("value") or "")
        if value.startswith("$(POD_NAME)."):
            return value.split(".")[1]
    raise ValueError("no ODRADEK_ADVERTISED_HOST in the pod's env")


def _client_tls(args: list[str], server_name: str) -> ClientTLS | None:
    """What the readiness check presents to a broker started with `args`: its own files."""
    if "--tls-cert" not in args:
        return None
    files = {flag: Path(args[args.index(flag) + 1])
             for flag in ("--tls-ca", "--tls-cert", "--tls-key")}
    return ClientTLS(files["--tls-ca"], files["--tls-cert"], files["--tls-key"], server_name)
