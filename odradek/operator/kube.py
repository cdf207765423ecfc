"""The few Kubernetes API calls the handlers make themselves (kopf makes the rest): the
official client, called off the event loop, with plain dicts in and out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from functools import cache
from typing import Any

import kubernetes

# The client's generated types want its model classes; plain dicts are what it sends.
client: Any = kubernetes.client
config: Any = kubernetes.config
ApiException: type[Exception] = kubernetes.client.exceptions.ApiException


@cache
def _api() -> Any:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def _core() -> Any:
    return client.CoreV1Api(_api())


async def _read(call: Callable[[], Any]) -> dict[str, Any] | None:
    """The object a read call answers, or None when there is none (404)."""
    def run() -> dict[str, Any] | None:
        try:
            reply = call()
        except ApiException as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise
        return dict(json.loads(reply.data))

    return await asyncio.to_thread(run)


async def read_secret(namespace: str, name: str) -> dict[str, Any] | None:
    return await _read(lambda: _core().read_namespaced_secret(name, namespace,
                                                              _preload_content=False))


async def create_secret(namespace: str, body: dict[str, Any]) -> bool:
    """Creates it; False when one of that name exists already (it is left alone)."""
    def create() -> bool:
        try:
            _core().create_namespaced_secret(namespace, body, _preload_content=False)
        except ApiException as exc:
            if getattr(exc, "status", None) == 409:
                return False
            raise
        return True

    return await asyncio.to_thread(create)


async def replace_secret_data(namespace: str, body: dict[str, Any]) -> None:
    """Merge-patches a Secret's data and type (a renewed certificate)."""
    def run() -> None:
        _core().patch_namespaced_secret(body["metadata"]["name"], namespace,
                                        {"data": body["data"]}, _preload_content=False)

    await asyncio.to_thread(run)


_KINDS = {"ConfigMap": ("CoreV1Api", "config_map"), "Service": ("CoreV1Api", "service"),
          "PodDisruptionBudget": ("PolicyV1Api", "pod_disruption_budget"),
          "StatefulSet": ("AppsV1Api", "stateful_set")}


def _methods(kind: str) -> tuple[Any, str]:
    api_class, suffix = _KINDS[kind]
    return getattr(client, api_class)(_api()), suffix


async def apply(namespace: str, body: dict[str, Any]) -> None:
    """Creates an object of a built-in kind, or merge-patches it to the rendered state."""
    def run() -> None:
        api, suffix = _methods(body["kind"])
        try:
            getattr(api, f"create_namespaced_{suffix}")(namespace, body, _preload_content=False)
        except ApiException as exc:
            if getattr(exc, "status", None) != 409:
                raise
            getattr(api, f"patch_namespaced_{suffix}")(
                body["metadata"]["name"], namespace, body, _preload_content=False)

    await asyncio.to_thread(run)


async def read(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    api, suffix = _methods(kind)
    return await _read(lambda: getattr(api, f"read_namespaced_{suffix}")(
        name, namespace, _preload_content=False))


async def list_pods(namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
    def run() -> list[dict[str, Any]]:
        text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        reply = _core().list_namespaced_pod(namespace, label_selector=text,
                                            _preload_content=False)
        return list(json.loads(reply.data).get("items") or [])

    return await asyncio.to_thread(run)


async def list_services(namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
    def run() -> list[dict[str, Any]]:
        text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        reply = _core().list_namespaced_service(namespace, label_selector=text,
                                                _preload_content=False)
        return list(json.loads(reply.data).get("items") or [])

    return await asyncio.to_thread(run)


async def delete_service(namespace: str, name: str) -> None:
    def run() -> None:
        try:
            _core().delete_namespaced_service(name, namespace, _preload_content=False)
        except ApiException as exc:
            if getattr(exc, "status", None) != 404:
                raise

    await asyncio.to_thread(run)


async def delete_pod(namespace: str, name: str) -> None:
    """The StatefulSet controller makes it again, from the current template."""
    def run() -> None:
        try:
            _core().delete_namespaced_pod(name, namespace, _preload_content=False)
        except ApiException as exc:
            if getattr(exc, "status", None) != 404:
                raise

    await asyncio.to_thread(run)


async def annotate_pod(namespace: str, name: str, annotations: dict[str, str]) -> None:
    def run() -> None:
        _core().patch_namespaced_pod(name, namespace,
                                     {"metadata": {"annotations": annotations}},
                                     _preload_content=False)

    await asyncio.to_thread(run)


async def read_node(name: str) -> dict[str, Any] | None:
    return await _read(lambda: _core().read_node(name, _preload_content=False))
