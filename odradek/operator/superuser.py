"""A Cluster's super user when authorization is on: a SCRAM user with a generated
password, kept in a Secret owned by the Cluster, that the brokers create at their first
start (--bootstrap-user) and the operator logs in as. Plain functions, no kopf."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from odradek.operator import users

USERNAME = "admin"
PRINCIPAL = f"User:{USERNAME}"
MOUNT = "/etc/odradek/admin"
VOLUME = "super-user"


def secret_name(cluster: str) -> str:
    return f"{cluster}-admin"


def broker_args() -> list[str]:
    # A file, not an env var: the password stays out of the pod spec and `ps`.
    return ["--bootstrap-user", USERNAME, "--bootstrap-password-file", f"{MOUNT}/password"]


def volume(cluster: str) -> dict[str, Any]:
    return {"name": VOLUME, "secret": {"secretName": secret_name(cluster),
                                       "items": [{"key": "password", "path": "password"}],
                                       "defaultMode": 0o440}}


def mount() -> dict[str, Any]:
    return {"name": VOLUME, "mountPath": MOUNT, "readOnly": True}


def secret_body(cluster: str, namespace: str, labels: Mapping[str, str],
                owner_ref: Mapping[str, Any], password: str, bootstrap: str) -> dict[str, Any]:
    """The same keys as a User's Secret (username, password, sasl.mechanism, bootstrap)."""
    return users.credentials_secret(secret_name(cluster), namespace, labels, owner_ref,
                                    USERNAME, password, bootstrap)
