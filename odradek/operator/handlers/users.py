"""User handlers: a SCRAM user with a generated password, or a client certificate from
the cluster CA (the Cluster's own, else the operator's files), kept in an owned Secret;
and exactly the ACL bindings of the spec."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import kopf
from cryptography import x509

from odradek.client import Admin, OdradekError
from odradek.client.acls import acl, acl_filter, describe
from odradek.operator import crds, kube, pki
from odradek.operator import users as u
from odradek.operator.conditions import Outcome
from odradek.operator.handlers.common import call, conclude, ensure_scram_user, refused
from odradek.operator.metrics import reconciling
from odradek.operator.runtime import BROKERS, NoBootstrap, bootstrap_for, resync_seconds
from odradek.security.certs import Key, load_pair

RESOURCE = (crds.GROUP, crds.VERSION, crds.plural("User"))
# The cluster CA that signs tls users' certificates (files, e.g. a mounted Secret); the
# brokers trust it as their --tls-ca.
ENV_CA_CERT = "ODRADEK_OPERATOR_CA_CERT"
ENV_CA_KEY = "ODRADEK_OPERATOR_CA_KEY"


async def _cluster_ca(namespace: str, spec: Any, cluster_cas: Any
                      ) -> tuple[x509.Certificate, Key]:
    """The CA that signs a tls User's certificate: its Cluster's own (spec.tls), else the
    one the operator is given as files (ODRADEK_OPERATOR_CA_*)."""
    ref = spec.get("clusterRef")
    found = list(cluster_cas.get((namespace, ref), [])) if ref else []
    if found:
        pair = pki.ca_pair(await kube.read_secret(namespace, found[0]))
        if pair is None:  # the Cluster's reconcile makes it
            raise kopf.TemporaryError(f"the CA Secret {found[0]} of Cluster {ref} is not "
                                      "there yet", delay=5)
        return pair
    ca_cert, ca_key = os.environ.get(ENV_CA_CERT), os.environ.get(ENV_CA_KEY)
    if not (ca_cert and ca_key):
        raise u.SpecError(f"tls users need a CA: spec.clusterRef names no Cluster with "
                          f"operator-issued TLS, and the operator has no "
                          f"{ENV_CA_CERT}/{ENV_CA_KEY}")
    return await asyncio.to_thread(load_pair, Path(ca_cert), Path(ca_key))


async def _certificate(body: Any, namespace: str, name: str, spec: Any,
                       cluster_cas: Any) -> None:
    """A Secret with a client certificate (CN=<user>) from the cluster CA, issued anew
    when missing, signed by another CA, or within u.RENEW_BEFORE of expiring."""
    ca_cert, ca_key = await _cluster_ca(namespace, spec, cluster_cas)
    secret = await kube.read_secret(namespace, u.secret_name(name))
    if not u.needs_certificate(secret, name, ca=ca_cert):
        return
    files = await asyncio.to_thread(u.issue_certificate, name, ca_cert, ca_key)
    new = u.tls_secret_body(name, namespace, body, files)
    if secret is None:
        await kube.create_secret(namespace, new)
    else:
        await kube.replace_secret_data(namespace, new)


async def _password(body: Any, namespace: str, name: str, where: str) -> tuple[str, bool]:
    """The user's password from its Secret, made (with the Secret) when there is none.
    True when it is new: the brokers must be told."""
    secret = await kube.read_secret(namespace, u.secret_name(name))
    password = u.password_of(secret) if secret else None
    if password:
        return password, False
    password = u.new_password()
    if not await kube.create_secret(namespace, u.secret_body(name, namespace, body, password,
                                                             where)):
        raise kopf.TemporaryError(f"Secret {u.secret_name(name)} exists without a password",
                                  delay=10)
    return password, True


async def _ensure_rules(admin: Admin, name: str, wanted: set[u.Rule]) -> int:
    present = [u.Rule(**describe(b)) for b in await call(
        lambda: admin.list_acls(acl_filter(principal=u.principal(name))), "list acls")]
    add, remove = u.rules_diff(wanted, present)
    if add:
        await call(lambda: admin.create_acls([
            acl(r.principal, r.resource_type, r.resource_name, r.operation, r.permission,
                r.pattern_type, r.host) for r in add]), "create acls")
    if remove:
        await call(lambda: admin.delete_acls([
            acl_filter(r.principal, r.resource_type, r.resource_name, r.operation,
                       r.permission, r.pattern_type, r.host) for r in remove]), "delete acls")
    return len(wanted)


async def reconcile(body: Any, spec: Any, status: Any, meta: Any, namespace: str, name: str,
                    patch: Any, cluster_cas: Any) -> None:
    generation = meta.get("generation")
    async with reconciling("User") as tally, BROKERS.lock(meta.get("uid", name)):
        tls = u.authentication(spec) == "tls"
        try:
            wanted = u.desired_rules(name, spec)
            where = bootstrap_for(namespace, spec)
            if tls:
                await _certificate(body, namespace, name, spec, cluster_cas)
        except (u.SpecError, NoBootstrap) as exc:
            tally.fail("InvalidSpec")
            conclude(body, status, patch, Outcome("False", "InvalidSpec", str(exc)), generation)
            return
        admin = BROKERS.admin(where)
        result = Outcome("True", "Ready", f"user {name} with {len(wanted)} ACL bindings")
        try:
            if not tls:  # a certificate's user exists by its CN alone
                password, new = await _password(body, namespace, name, where)
                await ensure_scram_user(admin, name, password, new)
            count = await _ensure_rules(admin, name, wanted)
        except OdradekError as exc:
            result, count = refused(exc), 0
            tally.fail(result.reason)
        conclude(body, status, patch, result, generation, username=name,
                 secret=u.secret_name(name), acls=count)


@kopf.on.create(*RESOURCE, id="user-create")
@kopf.on.update(*RESOURCE, id="user-update", field="spec")
@kopf.on.resume(*RESOURCE, id="user-resume")  # type: ignore[arg-type]
async def on_change(body: Any, spec: Any, status: Any, meta: Any, namespace: str, name: str,
                    patch: Any, cluster_cas: Any, **_: Any) -> None:
    await reconcile(body, spec, status, meta, namespace, name, patch, cluster_cas)


@kopf.timer(*RESOURCE, id="user-resync", interval=resync_seconds(),  # type: ignore[arg-type]
            initial_delay=resync_seconds())
async def resync(body: Any, spec: Any, status: Any, meta: Any, namespace: str, name: str,
                 patch: Any, cluster_cas: Any, **_: Any) -> None:
    """Puts back a user or ACL binding removed or added outside the resource."""
    await reconcile(body, spec, status, meta, namespace, name, patch, cluster_cas)


@kopf.on.delete(*RESOURCE, id="user-delete")  # type: ignore[arg-type]
async def on_delete(spec: Any, meta: Any, namespace: str, name: str, **_: Any) -> None:
    """Removes the user's bindings and the user; the Secret goes with its owner."""
    BROKERS.forget(meta.get("uid", name))
    async with reconciling("User"):
        admin = BROKERS.admin(bootstrap_for(namespace, spec))
        await call(lambda: admin.delete_acls([acl_filter(principal=u.principal(name))]),
                   "delete acls")
        if name in {d.name for d in await call(admin.list_users, "list users")}:
            await call(lambda: admin.delete_user(name), "delete user")
