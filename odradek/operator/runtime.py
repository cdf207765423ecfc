"""What the handlers share: where the brokers are, one Admin client per bootstrap, a lock
per resource, and the resync interval. No kopf here."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from odradek.client import Admin
from odradek.client.options import ConnectionOptions

ENV_BOOTSTRAP = "ODRADEK_BOOTSTRAP"
ENV_RESYNC = "ODRADEK_OPERATOR_RESYNC_S"
ENV_ROLL_TIMEOUT = "ODRADEK_OPERATOR_ROLL_TIMEOUT_S"
DEFAULT_PORT = 9092


def roll_timeout_seconds(env: Mapping[str, str] = os.environ) -> float:
    """How long a restarted broker may take to be ready before the roll stops."""
    return float(env.get(ENV_ROLL_TIMEOUT) or 300)


class NoBootstrap(ValueError):
    """The resource names no cluster and the operator has no override."""


def resync_seconds(env: Mapping[str, str] = os.environ) -> float:
    """How often drift made outside the resources is looked for and reverted."""
    return float(env.get(ENV_RESYNC) or 30)


def client_service(cluster: str) -> str:
    """The client Service of a Cluster resource (rendered by odradek/operator/cluster.py)."""
    return f"{cluster}-bootstrap"


def bootstrap_for(namespace: str | None, spec: Mapping[str, Any],
                  env: Mapping[str, str] = os.environ) -> str:
    """The brokers a resource's changes go to: the operator's ODRADEK_BOOTSTRAP when set
    (one cluster for all, as in the tests), else spec.clusterRef's client Service."""
    override = env.get(ENV_BOOTSTRAP)
    if override:
        return override
    ref = spec.get("clusterRef")
    if not ref:
        raise NoBootstrap("spec.clusterRef is not set and the operator has no "
                          f"{ENV_BOOTSTRAP}")
    return f"{client_service(str(ref))}.{namespace or 'default'}.svc:{DEFAULT_PORT}"


class Brokers:
    """One Admin per bootstrap address, made on first use and closed at shutdown. A
    Cluster's reconcile says how its brokers are reached (TLS files, its super user);
    otherwise credentials come from ODRADEK_USERNAME / ODRADEK_PASSWORD."""

    def __init__(self) -> None:
        self._admins: dict[str, Admin] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tls_dirs: dict[str, Path] = {}
        self._options: dict[str, ConnectionOptions] = {}

    def admin(self, bootstrap: str) -> Admin:
        if bootstrap not in self._admins:
            self._admins[bootstrap] = Admin(bootstrap, request_timeout_ms=10_000,
                                            connection=self._options.get(bootstrap))
        return self._admins[bootstrap]

    async def _connect_with(self, bootstrap: str, options: ConnectionOptions) -> None:
        if self._options.get(bootstrap) != options:
            self._options[bootstrap] = options
            stale = self._admins.pop(bootstrap, None)  # made with what no longer holds
            if stale is not None:
                await stale.close()

    async def use_tls(self, bootstrap: str, files: Mapping[str, bytes],
                      server_name: str) -> None:
        """The brokers at `bootstrap` speak mutual TLS: the operator presents the brokers'
        own certificate (their principal is a super user) and trusts their CA. Rewritten
        files are read at the next connection, so a renewal needs nothing more.

        `server_name` (a broker pod's DNS name, which the brokers' one certificate holds)
        is checked in every broker's certificate, whatever address the brokers advertise
        or ODRADEK_BOOTSTRAP names: trust comes from the Cluster's own CA."""
        directory = self._tls_dirs.get(bootstrap)
        if directory is None:
            directory = self._tls_dirs[bootstrap] = Path(
                tempfile.mkdtemp(prefix="odradek-tls-"))
        for name in ("ca.crt", "tls.crt", "tls.key"):
            path = directory / name
            if not path.exists() or path.read_bytes() != files[name]:
                path.write_bytes(files[name])
                path.chmod(0o600)
        await self._connect_with(bootstrap, dataclasses.replace(
            self._options.get(bootstrap) or ConnectionOptions(), tls_ca=directory / "ca.crt",
            tls_cert=directory / "tls.crt", tls_key=directory / "tls.key",
            tls_server_name=server_name))

    async def use_login(self, bootstrap: str, username: str, password: str) -> None:
        """The operator logs in to these brokers as their super user (SCRAM); a session
        outranks a client certificate, so this is who it is, with TLS or without."""
        await self._connect_with(bootstrap, dataclasses.replace(
            self._options.get(bootstrap) or ConnectionOptions(), username=username,
            password=password))

    def lock(self, uid: str) -> asyncio.Lock:
        # Change handlers and the resync timer of one resource must not interleave.
        return self._locks.setdefault(uid, asyncio.Lock())

    def forget(self, uid: str) -> None:
        self._locks.pop(uid, None)

    async def close(self) -> None:
        admins, self._admins = self._admins, {}
        for admin in admins.values():
            await admin.close()


BROKERS = Brokers()
