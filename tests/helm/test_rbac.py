"""The chart's RBAC grants exactly what the operator's code uses: derived from the code,
not from a list kept by hand.

- The handlers kopf runs: every resource a handler is registered for is listed and
  watched; change, timer and delete handlers patch it (kopf keeps progress, the last
  handled spec and its finalizer on the object) and, where the CRD has a status
  subresource, its /status (the handlers write status).
- kopf's own needs given the operator's settings (odradek/operator/main.py configure()):
  CRD scanning, namespace observation when it serves some namespaces only, Events when
  posting is on, the peering objects when leader election is on.
- The calls odradek/operator/kube.py makes through the official client: each method name
  in that module (also the f-string templates it fills from `_KINDS`) is looked up in the
  client, whose generated code holds the HTTP method and path: that gives verb, group
  and resource.
- Owner references with blockOwnerDeletion (in what cluster.py and users.py render)
  need update on the owner's finalizers subresource.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import kopf
import kubernetes
import pytest
from kopf._cogs.structs import references

from odradek.operator import cluster as cl
from odradek.operator import crds, kube, users
from odradek.operator import handlers as handlers_package
from odradek.operator import main as operator_main
from tests.helm.chart import NAMESPACE, Doc, of_kind, render


class Grant(NamedTuple):
    group: str
    resource: str
    verb: str


Grants = set[Grant]
_KOPF_VERBS = ("list", "watch")
_HTTP_VERBS = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


def _registry() -> Any:
    for module in pkgutil.iter_modules(handlers_package.__path__):
        importlib.import_module(f"{handlers_package.__name__}.{module.name}")
    return kopf.get_default_registry()


def _settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # kopf decorates it as a startup activity; called directly it needs only settings.
    configure: Any = operator_main.configure
    configure(settings=settings)
    return settings


def _has_status(group: str, plural: str) -> bool:
    for kind in crds.KINDS:
        crd = crds.crd(kind)
        if (crd["spec"]["group"], crd["spec"]["names"]["plural"]) == (group, plural):
            return "status" in crd["spec"]["versions"][0].get("subresources", {})
    return False


def _plural(selector: references.Selector) -> str:
    # The operator names its resources by plural; kopf keeps that as plural or any_name.
    name = selector.plural or selector.any_name
    assert isinstance(name, str) and name, selector
    return name


def handler_grants() -> Grants:
    registry = _registry()
    grants: Grants = set()
    watched = [*registry._indexing.get_all_handlers(), *registry._watching.get_all_handlers()]
    changing = [*registry._changing.get_all_handlers(), *registry._spawning.get_all_handlers()]
    for handler in watched + changing:
        group, plural = handler.selector.group, _plural(handler.selector)
        grants |= {Grant(group, plural, verb) for verb in _KOPF_VERBS}
        if handler in changing:
            grants.add(Grant(group, plural, "patch"))
            if _has_status(group, plural):
                grants.add(Grant(group, f"{plural}/status", "patch"))
    return grants


def _selector_grants(selector: references.Selector, verbs: tuple[str, ...]) -> Grants:
    group = selector.group or ""  # kopf writes the core group as version "v1", group ""
    return {Grant(group, _plural(selector), verb) for verb in verbs}


def kopf_grants(clusterwide: bool, peering: bool) -> tuple[Grants, Grants]:
    """(namespaced, cluster-scoped) needs of kopf itself."""
    settings = _settings()
    namespaced: Grants = set()
    cluster: Grants = set()
    if not settings.scanning.disabled:
        cluster |= _selector_grants(references.CRDS, _KOPF_VERBS)
        if not clusterwide:
            cluster |= _selector_grants(references.NAMESPACES, _KOPF_VERBS)
    if settings.posting.enabled:
        namespaced |= _selector_grants(references.EVENTS, ("create",))
    if peering:
        if clusterwide:
            cluster |= _selector_grants(references.CLUSTER_PEERINGS_K, (*_KOPF_VERBS, "patch"))
        else:
            namespaced |= _selector_grants(references.NAMESPACED_PEERINGS_K,
                                           (*_KOPF_VERBS, "patch"))
    return namespaced, cluster


def _client_methods() -> set[str]:
    """Client method names kube.py calls: literal attributes, and f-string templates
    such as f"create_namespaced_{suffix}" filled with every suffix of `_KINDS`."""
    tree = ast.parse(Path(kube.__file__).read_text())
    pattern = re.compile(r"^(read|list|create|patch|replace|delete)_(namespaced_\w+|node)$")
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and pattern.match(node.attr):
            names.add(node.attr)
        elif isinstance(node, ast.JoinedStr):
            prefix = "".join(str(v.value) for v in node.values
                             if isinstance(v, ast.Constant))
            if pattern.match(prefix + "x"):
                names |= {prefix + suffix for _, suffix in kube._KINDS.values()}
    return names


def _api_classes() -> list[type]:
    tree = ast.parse(Path(kube.__file__).read_text())
    named = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
             and n.attr.endswith("Api")}
    named |= {api for api, _ in kube._KINDS.values()}
    return [getattr(kubernetes.client, name) for name in sorted(named)]


def _http(cls: type, method: str) -> tuple[str, str]:
    """The HTTP method and path of a client method, from the client's generated code."""
    source = inspect.getsource(getattr(cls, f"_{method}_serialize"))
    http = re.search(r"method='(\w+)'", source)
    path = re.search(r"resource_path='([^']+)'", source)
    assert http and path, f"{cls.__name__}.{method}: no method or path in its code"
    return http.group(1), path.group(1)


def _grant_of(http: str, path: str) -> Grant:
    parts = path.strip("/").split("/")
    # /api/v1/namespaces/{namespace}/secrets[/{name}] or /apis/<group>/<v>/namespaces/...
    group = "" if parts[0] == "api" else parts[1]
    # A cluster-scoped kind (nodes): its plural follows the version.
    after = parts[parts.index("{namespace}") + 1:] if "{namespace}" in parts else parts[2:]
    resource = after[0] + (f"/{after[2]}" if len(after) > 2 else "")
    named = len(after) > 1
    verb = ("get" if named else "list") if http == "GET" else _HTTP_VERBS[http]
    return Grant(group, resource, verb)


CLUSTER_SCOPED = {"nodes"}


def client_grants() -> Grants:
    grants: Grants = set()
    methods = _client_methods()
    assert methods, "no client call found in kube.py: the scan is broken"
    for method in methods:
        owners = [cls for cls in _api_classes() if hasattr(cls, method)]
        assert owners, f"kube.py calls {method}, which no client API class has"
        grants |= {_grant_of(*_http(cls, method)) for cls in owners}
    return grants


def _owner_refs(obj: Any) -> Iterator[dict[str, Any]]:
    yield from (obj.get("metadata") or {}).get("ownerReferences") or []


def owner_grants() -> Grants:
    owner = {"apiVersion": crds.API_VERSION, "metadata": {"name": "x", "uid": "u"}}
    spec = cl.desired({}, "x", NAMESPACE)
    rendered = cl.render(spec, {**owner, "kind": "Cluster"})
    rendered.append(users.secret_body("x", NAMESPACE, {**owner, "kind": "User"}, "pw", "b:1"))
    rendered.append(users.tls_secret_body("x", NAMESPACE, {**owner, "kind": "User"},
                                          {"ca.crt": b"", "tls.crt": b"", "tls.key": b""}))
    grants: Grants = set()
    for obj in rendered:
        for ref in _owner_refs(obj):
            if ref.get("blockOwnerDeletion"):
                grants.add(Grant(crds.GROUP, f"{crds.plural(ref['kind'])}/finalizers", "update"))
    return grants


def derived(clusterwide: bool, peering: bool) -> tuple[Grants, Grants]:
    """(namespaced, cluster-scoped) grants the operator's code needs."""
    kopf_namespaced, kopf_cluster = kopf_grants(clusterwide, peering)
    client = client_grants()
    on_cluster = {g for g in client if g.resource in CLUSTER_SCOPED}
    namespaced = handler_grants() | (client - on_cluster) | owner_grants() | kopf_namespaced
    return namespaced, kopf_cluster | on_cluster


def _grants(role: Doc) -> Grants:
    return {Grant(group, resource, verb) for rule in role["rules"]
            for group in rule["apiGroups"] for resource in rule["resources"]
            for verb in rule["verbs"]}


SCOPES: dict[str, dict[str, Any]] = {
    "one-namespace": {},
    "namespaces-ha": {"operator": {"replicas": 2, "watch": {"namespaces": ["a", "b"]}},
                      "cluster": {"create": False}},
    "all-namespaces": {"operator": {"watch": {"allNamespaces": True}}},
    "all-namespaces-ha": {"operator": {"replicas": 2, "watch": {"allNamespaces": True}}},
}


@pytest.mark.parametrize("scope", sorted(SCOPES))
def test_rbac_grants_exactly_what_the_code_uses(scope: str) -> None:
    values = SCOPES[scope]
    operator = values.get("operator", {})
    clusterwide = operator.get("watch", {}).get("allNamespaces", False)
    namespaced, cluster = derived(clusterwide, operator.get("replicas", 1) > 1)
    docs = render(values)
    cluster_role = _grants(of_kind(docs, "ClusterRole")[0])
    if clusterwide:
        assert not of_kind(docs, "Role")
        assert cluster_role == namespaced | cluster, (
            f"missing {(namespaced | cluster) - cluster_role}, "
            f"not used {cluster_role - (namespaced | cluster)}")
        return
    assert cluster_role == cluster
    roles = of_kind(docs, "Role")
    namespaces = operator.get("watch", {}).get("namespaces", [NAMESPACE])
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(namespaces)
    for role in roles:
        granted = _grants(role)
        assert granted == namespaced, (f"missing {namespaced - granted}, "
                                       f"not used {granted - namespaced}")


def test_bindings_name_the_operator_service_account() -> None:
    docs = render(SCOPES["namespaces-ha"])
    account = of_kind(docs, "ServiceAccount")[0]["metadata"]
    for binding in of_kind(docs, "RoleBinding") + of_kind(docs, "ClusterRoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"],
                                        "namespace": account["namespace"]}]
        role_kind = "Role" if binding["kind"] == "RoleBinding" else "ClusterRole"
        assert binding["roleRef"]["kind"] == role_kind


def test_the_derivation_sees_the_code() -> None:
    # What each source contributes, so a scan that silently finds nothing fails here.
    assert Grant("", "secrets", "create") in client_grants()
    assert Grant("apps", "statefulsets", "patch") in client_grants()
    assert Grant("policy", "poddisruptionbudgets", "get") in client_grants()
    assert Grant("", "nodes", "get") in client_grants()
    assert Grant("", "pods", "delete") in client_grants()
    assert Grant(crds.GROUP, "topics", "watch") in handler_grants()
    assert Grant(crds.GROUP, "users/status", "patch") in handler_grants()
    assert owner_grants() == {Grant(crds.GROUP, "clusters/finalizers", "update"),
                              Grant(crds.GROUP, "users/finalizers", "update")}
