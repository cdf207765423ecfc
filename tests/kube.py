"""The operator against a Kubernetes API mock (kmock) and real brokers: the emulator's
missing server-side fields, the CRDs declared to it, the operator process, bounded waits.

kmock's emulator stores objects as JSON and merges patches; a real API server also stamps
uid, resourceVersion, generation and creationTimestamp, fails a JSON patch whose
resourceVersion test is stale (kopf's finalizers rely on it), names objects from
generateName (kopf's Events), keeps spec out of status patches and collects the
dependents of a deleted owner. OdradekKube adds just those.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import kmock

from odradek.operator import crds
from tests.brokers import free_port

T = TypeVar("T")
NAMESPACE = "default"
OPERATOR_START_S = 30.0
_versions = itertools.count(1)


class OdradekKube(kmock.KubernetesEmulator):
    """kmock's emulator with the server-side fields an operator relies on."""

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock 0.8 reads /api/v1/namespaces as "namespace <missing>" and fails; kopf lists
        # and watches it to match its namespace patterns. The namespaces never change here.
        if raw.path.rstrip("/") == "/api/v1/namespaces":
            return await self._namespaces(raw)
        return await super().__call__(raw)

    async def _namespaces(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if raw.query.get("watch") not in ("true", "1"):
            items = [dict(o.raw) for (res, _, _), o in self.objects.items()
                     if res == kmock.resource("v1/namespaces") and not o.deleted]
            return aiohttp.web.json_response({"apiVersion": "v1", "kind": "NamespaceList",
                                              "metadata": {"resourceVersion": "1"},
                                              "items": items})
        response = aiohttp.web.StreamResponse()
        await response.prepare(raw)
        timeout = float(raw.query.get("timeoutSeconds") or 60)
        await asyncio.sleep(timeout)  # a watch on which nothing happens
        return response

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.resource is not None and request.action == kmock.action.CREATE:
            self._stamp_new(request)
        elif request.resource is not None and request.action == kmock.action.UPDATE:
            conflict = self._stamp_change(request)
            if conflict:
                return aiohttp.web.json_response({
                    "kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "code": 422, "reason": "Invalid", "message": conflict}, status=422)
        response = await super()._handle(request)
        if request.resource is not None and request.action in (
                kmock.action.DELETE, kmock.action.UPDATE):
            await self._collect_garbage()
        return response

    def _stamp_new(self, request: kmock.Request) -> None:
        meta = request.data.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:6]
        if request.namespace:
            meta.setdefault("namespace", request.namespace)
        meta.update(uid=str(uuid.uuid4()), resourceVersion=str(next(_versions)), generation=1,
                    creationTimestamp=datetime.datetime.now(datetime.UTC).isoformat())

    def _has_status(self, request: kmock.Request) -> bool:
        """Has the kind a status subresource (kopf's peering kinds have none)?"""
        for key, info in self.resources.items():
            if kmock.resource(key) == request.resource:
                return "status" in (info.subresources or set())
        return True

    def _current(self, request: kmock.Request) -> Any:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return self.objects[key]

    def _stamp_change(self, request: kmock.Request) -> str | None:
        current = self._current(request)
        if current is None:
            return None  # the emulator answers 404
        meta = current.get("metadata", {})
        version = str(next(_versions))
        status_only = request.subresource == "status"
        data = request.data
        if isinstance(data, list):  # a JSON patch
            for op in data:
                if (op.get("op") == "test" and op.get("path") == "/metadata/resourceVersion"
                        and op.get("value") != meta.get("resourceVersion")):
                    return "the object has been modified; resourceVersion test failed"
            spec_changed = any(str(op.get("path", "")).startswith("/spec") for op in data)
            data.append({"op": "replace", "path": "/metadata/resourceVersion",
                         "value": version})
            if spec_changed and not status_only:
                data.append({"op": "replace", "path": "/metadata/generation",
                             "value": int(meta.get("generation", 1)) + 1})
            return None
        if status_only:  # the status subresource changes the status alone
            for key in [k for k in data if k != "status"]:
                del data[key]
        elif "status" in data and self._has_status(request):  # ... and the main one never
            del data["status"]
        if not status_only and "spec" in data and data["spec"] != current.get("spec"):
            data.setdefault("metadata", {})["generation"] = int(meta.get("generation", 1)) + 1
        if not isinstance(data.get("metadata"), dict):
            data["metadata"] = {}
        data["metadata"]["resourceVersion"] = version
        return None

    async def _collect_garbage(self) -> None:
        """Deletes objects whose owner (by ownerReferences uid) is gone."""
        async with self._lock:
            live = {o.get("metadata", {}).get("uid") for o in self.objects.values()
                    if not o.deleted}
            for (resource, _, _), obj in list(self.objects.items()):
                refs = [] if obj.deleted else obj.get("metadata", {}).get("ownerReferences", [])
                if refs and all(r.get("uid") not in live for r in refs):
                    raw = obj.raw
                    obj.delete()
                    await self._buses[resource].put({"type": "DELETED", "object": raw})


def declare_crds(kube: kmock.KubernetesEmulator) -> None:
    """Tells the mock about the kinds, from the same definitions as deploy/crds."""
    verbs = {"get", "list", "watch", "create", "update", "patch", "delete"}
    for kind, k in crds.KINDS.items():
        kube.resources[f"{crds.API_VERSION}/{k['plural']}"] = kmock.ResourceInfo(
            kind=kind, singular=k["singular"], shortnames=set(k["short"]), verbs=verbs,
            subresources={"status"}, namespaced=True)
    for plural, kind in (("events", "Event"), ("secrets", "Secret"), ("services", "Service"),
                         ("configmaps", "ConfigMap"), ("pods", "Pod")):
        kube.resources[f"v1/{plural}"] = kmock.ResourceInfo(
            kind=kind, singular=kind.lower(), verbs=verbs, namespaced=True,
            subresources={"status"} if kind == "Pod" else set())
    kube.resources["apps/v1/statefulsets"] = kmock.ResourceInfo(
        kind="StatefulSet", singular="statefulset", verbs=verbs, subresources={"status"},
        namespaced=True)
    kube.resources["policy/v1/poddisruptionbudgets"] = kmock.ResourceInfo(
        kind="PodDisruptionBudget", singular="poddisruptionbudget", verbs=verbs,
        namespaced=True)
    # kopf waits for the namespaces (to match its --namespace patterns) and the CRDs.
    kube.resources["v1/nodes"] = kmock.ResourceInfo(
        kind="Node", singular="node", verbs=verbs, namespaced=False)
    kube.resources["v1/namespaces"] = kmock.ResourceInfo(
        kind="Namespace", singular="namespace", verbs=verbs, namespaced=False)
    kube.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
        kind="CustomResourceDefinition", singular="customresourcedefinition", verbs=verbs,
        namespaced=False)
    kube.objects["v1/namespaces", None, NAMESPACE] = {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    for definition in crds.all_crds().values():
        kube.objects["apiextensions.k8s.io/v1/customresourcedefinitions", None,
                     definition["metadata"]["name"]] = definition


def write_kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: kmock, cluster: {{server: '{url}'}}}}]\n"
        "users: [{name: test, user: {token: test}}]\n"
        f"contexts: [{{name: kmock, context: {{cluster: kmock, user: test, "
        f"namespace: {NAMESPACE}}}}}]\n"
        "current-context: kmock\n")
    return path


class OperatorProcess:
    """`odradek operator` in a child process, pointed at the mock and at real brokers."""

    def __init__(self, workdir: Path, kube_url: str, bootstrap: str,
                 extra_env: dict[str, str] | None = None,
                 namespaces: list[str] | None = None, extra_args: list[str] | None = None,
                 name: str = "operator") -> None:
        # namespaces: the --namespace flags (None: --all-namespaces).
        self.extra_args = extra_args or []
        self.scope = ([a for n in namespaces for a in ("--namespace", n)]
                      if namespaces is not None else ["--all-namespaces"])
        self.kubeconfig = write_kubeconfig(workdir / "kubeconfig", kube_url)
        self.log_path = workdir / f"{name}.log"
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        self.env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), ODRADEK_BOOTSTRAP=bootstrap,
                        ODRADEK_OPERATOR_RESYNC_S="1.5", PYTHONUNBUFFERED="1",
                        **(extra_env or {}))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        cmd = [sys.executable, "-m", "odradek.cli.main", "operator", *self.scope,
               "--metrics-port", str(self.metrics_port),
               "--liveness-port", str(self.liveness_port), *self.extra_args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        return self

    async def wait_alive(self, timeout: float = OPERATOR_START_S) -> None:
        url = f"http://127.0.0.1:{self.liveness_port}/healthz"

        async def alive() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited:\n{self.log()}")
            try:
                async with aiohttp.ClientSession() as session, session.get(
                        url, timeout=aiohttp.ClientTimeout(total=1)) as reply:
                    return reply.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        await eventually(alive, timeout, "operator liveness", self.log)

    async def scrape(self) -> str:
        """The operator's /metrics text."""
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{self.metrics_port}/metrics",
                timeout=aiohttp.ClientTimeout(total=5)) as reply:
            return await reply.text()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


async def eventually(check: Callable[[], Awaitable[T]], timeout: float, what: str,
                     context: Callable[[], str] | None = None) -> T:
    """Polls `check` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    extra = f"\n--- operator log (tail) ---\n{context()[-6000:]}" if context else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}{extra}")


def resource_url(kind: str, name: str | None = None, namespace: str = NAMESPACE) -> str:
    base = f"/apis/{crds.API_VERSION}/namespaces/{namespace}/{crds.plural(kind)}"
    return f"{base}/{name}" if name else base


def manifest(kind: str, name: str, spec: dict[str, Any],
             annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NAMESPACE}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": crds.API_VERSION, "kind": kind, "metadata": meta, "spec": spec}


def stored(kube: kmock.KubernetesEmulator, kind: str, name: str) -> dict[str, Any] | None:
    """The object as the API holds it now (None: absent or deleted)."""
    key = (kmock.resource(f"{crds.API_VERSION}/{crds.plural(kind)}"), NAMESPACE, name)
    if key not in kube.objects or kube.objects[key].deleted:
        return None
    return dict(kube.objects[key].raw)


def objects_of(kube: kmock.KubernetesEmulator, resource: str) -> list[dict[str, Any]]:
    """Every live object of a resource ("v1/events")."""
    wanted = kmock.resource(resource)
    return [dict(o.raw) for (res, _, _), o in kube.objects.items()
            if res == wanted and not o.deleted]


def ready(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """The Ready condition of an object's status."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return dict(c)
    return None


async def apply(kube: kmock.KubernetesEmulator, body: dict[str, Any]) -> None:
    reply = await kube.post(resource_url(body["kind"]), json=body)
    assert reply.status in (200, 201), await reply.text()


async def patch_spec(kube: kmock.KubernetesEmulator, kind: str, name: str,
                     spec: dict[str, Any]) -> None:
    reply = await kube.patch(resource_url(kind, name), json={"spec": spec},
                             headers={"Content-Type": "application/merge-patch+json"})
    assert reply.status == 200, await reply.text()


async def wait_ready(kube: kmock.KubernetesEmulator, op: OperatorProcess, kind: str, name: str,
                     status: str = "True", reason: str | None = None,
                     timeout: float = 40.0) -> dict[str, Any]:
    """Waits until the resource's Ready condition is `status` (and `reason`) for its
    current generation; returns the object."""
    async def check() -> dict[str, Any] | None:
        obj = stored(kube, kind, name)
        cond = ready(obj)
        generation = (obj or {}).get("metadata", {}).get("generation")
        if (obj and cond and cond["status"] == status
                and (reason is None or cond["reason"] == reason)
                and obj["status"].get("observedGeneration") == generation):
            return obj
        return None

    def context() -> str:
        return f"{stored(kube, kind, name)}\n{op.log()}"

    return await eventually(check, timeout, f"{kind} {name} Ready={status} {reason or ''}",
                            context)
