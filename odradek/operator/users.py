"""User resources, as plain functions: the ACL bindings a spec asks for, the difference
to what the brokers hold, and the Secret with the credentials."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from odradek.client.acls import CLUSTER_NAME

MECHANISM = "SCRAM-SHA-512"
PASSWORD_BYTES = 24


class SpecError(ValueError):
    """The User asks for something the operator cannot do."""


@dataclass(frozen=True, order=True)
class Rule:
    """One ACL binding in plain strings, as odradek.client.acls takes and gives them."""

    principal: str
    resource_type: str
    resource_name: str
    pattern_type: str
    operation: str
    permission: str
    host: str = "*"


def principal(user: str) -> str:
    return f"User:{user}"


def desired_rules(user: str, spec: Mapping[str, Any]) -> set[Rule]:
    auth = (spec.get("authentication") or {}).get("type")
    if auth != "scram-sha-512":
        raise SpecError(f"authentication {auth!r} is not supported yet: use scram-sha-512")
    rules: set[Rule] = set()
    for acl in (spec.get("authorization") or {}).get("acls") or []:
        resource = acl.get("resource") or {}
        rtype = resource.get("type")
        name = CLUSTER_NAME if rtype == "cluster" else resource.get("name")
        if not name:
            raise SpecError(f"a {rtype} rule needs resource.name")
        for op in acl.get("operations") or []:
            rules.add(Rule(principal(user), str(rtype), str(name),
                           "literal" if rtype == "cluster" else
                           str(resource.get("patternType") or "literal"),
                           str(op), str(acl.get("type") or "allow"), str(acl.get("host") or "*")))
    return rules


def rules_diff(wanted: set[Rule], present: Iterable[Rule]) -> tuple[list[Rule], list[Rule]]:
    """(to add, to remove): the user ends up with exactly the rules of its spec."""
    have = set(present)
    return sorted(wanted - have), sorted(have - wanted)


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def secret_name(user: str) -> str:
    return user


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret_body(user: str, namespace: str, owner: Mapping[str, Any], password: str,
                bootstrap: str) -> dict[str, Any]:
    """The Secret a pod mounts (or reads as env): owned by the User, so it goes with it."""
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {
            "name": secret_name(user), "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "odradek-operator",
                       "odradek.io/user": user},
            "ownerReferences": [{
                "apiVersion": owner["apiVersion"], "kind": owner["kind"],
                "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                "controller": True, "blockOwnerDeletion": True}],
        },
        "data": {"username": _b64(user), "password": _b64(password),
                 "sasl.mechanism": _b64(MECHANISM), "bootstrap": _b64(bootstrap)},
    }


def password_of(secret: Mapping[str, Any]) -> str | None:
    value = (secret.get("data") or {}).get("password")
    return base64.b64decode(value).decode() if value else None
