"""User resources through `odradek operator` against kmock and a real broker with
authorization on: the generated password in an owned Secret logs in, the ACLs are
enforced and kept exactly as the spec says, deletion removes the user and its bindings;
a tls user's certificate from the cluster CA is its identity over mutual TLS."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import kmock
import pytest

from odradek.client import Admin, PermissionDeniedError
from odradek.client.acls import acl, acl_filter, describe
from odradek.client.errors import AuthenticationFailedError
from odradek.security.certs import make_pki
from odradek.security.tls import ClientTLS
from tests.brokers import BrokerProcess, tls_args
from tests.integration.test_acl import ADMIN_PASSWORD, secured_args, wait_for_login
from tests.kube import (
    OdradekKube,
    OperatorProcess,
    apply,
    eventually,
    manifest,
    objects_of,
    patch_spec,
    resource_url,
    stored,
    wait_ready,
)
from tests.operator_fixtures import WAIT_S, running_operator

pytestmark = [pytest.mark.slow, pytest.mark.kmock(cls=OdradekKube)]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    old = os.environ.get("ODRADEK_BOOTSTRAP_PASSWORD")
    os.environ["ODRADEK_BOOTSTRAP_PASSWORD"] = ADMIN_PASSWORD
    proc = BrokerProcess(tmp_path_factory.mktemp("op-users") / "b", extra_args=secured_args())
    try:
        yield proc.start()
    finally:
        proc.stop()
        if old is None:
            os.environ.pop("ODRADEK_BOOTSTRAP_PASSWORD", None)
        else:
            os.environ["ODRADEK_BOOTSTRAP_PASSWORD"] = old


@pytest.fixture
async def admin(broker: BrokerProcess) -> AsyncIterator[Admin]:
    await wait_for_login(broker.address, "admin", ADMIN_PASSWORD)
    async with Admin(broker.address, username="admin", password=ADMIN_PASSWORD) as a:
        yield a


@pytest.fixture
async def operator(kmock: kmock.KubernetesEmulator, broker: BrokerProcess, admin: Admin,
                   tmp_path: Path) -> AsyncIterator[OperatorProcess]:
    async with running_operator(kmock, tmp_path, broker.address, {
            "ODRADEK_USERNAME": "admin", "ODRADEK_PASSWORD": ADMIN_PASSWORD}) as proc:
        yield proc


def secret_of(kube: kmock.KubernetesEmulator, name: str) -> dict[str, str] | None:
    for secret in objects_of(kube, "v1/secrets"):
        if secret["metadata"]["name"] == name:
            return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    return None


async def rules(admin: Admin, user: str) -> set[tuple[str, ...]]:
    return {tuple(describe(b).values())
            for b in await admin.list_acls(acl_filter(principal=f"User:{user}"))}


async def test_user_lifecycle(kmock: kmock.KubernetesEmulator, operator: OperatorProcess,
                              admin: Admin, broker: BrokerProcess) -> None:
    await admin.create_topic("orders", 1, 1)
    await admin.create_topic("secrets", 1, 1)
    await apply(kmock, manifest("User", "alice", {
        "authentication": {"type": "scram-sha-512"},
        "authorization": {"acls": [
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["describe"]},
            {"resource": {"type": "group", "name": "billing"}, "operations": ["read"]}]}}))
    obj = await wait_ready(kmock, operator, "User", "alice")
    assert obj["status"]["secret"] == "alice" and obj["status"]["acls"] == 2

    # The Secret is owned by the User and its password logs in.
    secret = secret_of(kmock, "alice")
    assert secret and secret["username"] == "alice" and secret["sasl.mechanism"] == (
        "SCRAM-SHA-512")
    raw = next(s for s in objects_of(kmock, "v1/secrets") if s["metadata"]["name"] == "alice")
    assert raw["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    async with Admin(broker.address, username="alice", password=secret["password"]) as alice:
        # The ACLs are enforced: describe is allowed, creating a topic is not.
        assert (await alice.describe_topic("orders")).name == "orders"
        with pytest.raises(PermissionDeniedError):
            await alice.create_topic("alice-made", 1, 1)
        with pytest.raises(PermissionDeniedError):
            await alice.alter_configs("orders", {"retention.ms": "1000"})

    # A binding added outside the resource is removed; the spec's changes are applied.
    await admin.create_acls([acl("User:alice", "topic", "secrets", "read")])
    await patch_spec(kmock, "User", "alice", {"authorization": {"acls": [
        {"resource": {"type": "topic", "name": "orders"},
         "operations": ["describe", "alter_configs"]}]}})
    want = {("User:alice", "topic", "orders", "literal", op, "allow", "*")
            for op in ("describe", "alter_configs")}

    async def exact() -> bool:
        return await rules(admin, "alice") == want

    await eventually(exact, WAIT_S, "alice's ACLs as in the spec", operator.log)
    await wait_ready(kmock, operator, "User", "alice")
    async with Admin(broker.address, username="alice", password=secret["password"]) as alice:
        await alice.alter_configs("orders", {"retention.ms": "1000"})

    # Deleting the User removes it, its bindings and (as owner) its Secret.
    await kmock.delete(resource_url("User", "alice"))

    async def removed() -> bool:
        users = {u.name for u in await admin.list_users()}
        return ("alice" not in users and not await rules(admin, "alice")
                and stored(kmock, "User", "alice") is None and secret_of(kmock, "alice") is None)

    await eventually(removed, WAIT_S, "alice removed", operator.log)
    with pytest.raises(AuthenticationFailedError):
        async with Admin(broker.address, username="alice",
                         password=secret["password"]) as alice:
            await alice.describe_topic("orders")


async def test_tls_user(kmock: kmock.KubernetesEmulator, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    operator_tls = ClientTLS(pki.ca, pki.client_cert, pki.client_key)  # CN=client: super user
    proc = BrokerProcess(tmp_path / "b", tls=operator_tls, extra_args=[
        *tls_args(pki), "--authorization", "on", "--super-users", "User:client"])
    env = {"ODRADEK_TLS_CA": str(pki.ca), "ODRADEK_TLS_CERT": str(pki.client_cert),
           "ODRADEK_TLS_KEY": str(pki.client_key),
           "ODRADEK_OPERATOR_CA_CERT": str(pki.ca), "ODRADEK_OPERATOR_CA_KEY": str(pki.ca_key)}
    try:
        proc.start()
        async with running_operator(kmock, tmp_path, proc.address, env) as op, Admin(
                proc.address, tls_ca=pki.ca, tls_cert=pki.client_cert,
                tls_key=pki.client_key) as admin:
            await admin.create_topic("orders", 1, 1)
            await apply(kmock, manifest("User", "erin", {
                "authentication": {"type": "tls"},
                "authorization": {"acls": [{"resource": {"type": "topic", "name": "orders"},
                                            "operations": ["describe"]}]}}))
            obj = await wait_ready(kmock, op, "User", "erin")
            assert obj["status"]["secret"] == "erin"
            files = secret_of(kmock, "erin")
            assert files and set(files) == {"ca.crt", "tls.crt", "tls.key"}
            assert "erin" not in {u.name for u in await admin.list_users()}  # no SCRAM user
            for key, value in files.items():
                (tmp_path / key).write_text(value)
            async with Admin(proc.address, tls_ca=tmp_path / "ca.crt",
                             tls_cert=tmp_path / "tls.crt", tls_key=tmp_path / "tls.key") as erin:
                assert (await erin.describe_topic("orders")).name == "orders"
                with pytest.raises(PermissionDeniedError):
                    await erin.create_topic("erin-made", 1, 1)
            await kmock.delete(resource_url("User", "erin"))

            async def removed() -> bool:
                return not await rules(admin, "erin") and secret_of(kmock, "erin") is None

            await eventually(removed, WAIT_S, "erin's ACLs and Secret removed", op.log)
    finally:
        proc.stop()
