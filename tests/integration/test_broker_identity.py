"""Broker identity and the metrics endpoint (issue 11, items 6 and 9), real processes over
mutual TLS: only --broker-principal certificates call the brokers' own services (not any
super user); a broker whose certificate is not one of them refuses to start; no SCRAM
user takes a broker's name; the metrics are served over TLS with a client certificate
and a bearer token, and answer nothing without them."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from odradek.client.errors import from_rpc_error
from odradek.security.certs import Pki, make_pki
from odradek.security.tls import ClientTLS, open_channel
from odradek.v1 import cluster_pb2, cluster_pb2_grpc
from odradek.v1 import security_pb2 as spb
from odradek.v1 import security_pb2_grpc as spb_grpc
from tests.brokers import BrokerProcess, client_tls, free_port, tls_args

TOKEN = "metrics-token-1234"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _args(pki: Pki, token_file: Path, *extra: str) -> list[str]:
    return [*tls_args(pki), "--authorization", "on", "--super-users", "User:client",
            "--metrics-tls", "on", "--metrics-token-file", str(token_file), *extra]


@pytest.fixture
async def secured(tmp_path: Path, pki: Pki) -> AsyncIterator[BrokerProcess]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    proc = BrokerProcess(tmp_path / "b", tls=client_tls(pki), extra_args=_args(
        pki, token_file, "--broker-principal", "User:broker"))
    try:
        yield proc.start()
    finally:
        proc.stop()


async def test_only_broker_principals_call_broker_services(secured: BrokerProcess,
                                                           pki: Pki) -> None:
    # User:client is a super user, yet not a broker.
    async with open_channel(secured.address, client_tls(pki)) as channel:
        controller = cluster_pb2_grpc.ControllerStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await controller.FetchMetadata(cluster_pb2.FetchMetadataRequest(), timeout=10)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "only the brokers (--broker-principal)" in (denied.value.details() or "")
        security = spb_grpc.SecurityStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as taken:
            await security.CreateUser(spb.UpsertUserRequest(name="broker"), timeout=10)
        assert taken.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert from_rpc_error(taken.value).reason == "INVALID_REQUEST"
    as_broker = ClientTLS(pki.ca, pki.broker_cert, pki.broker_key)
    async with open_channel(secured.address, as_broker) as channel:
        controller = cluster_pb2_grpc.ControllerStub(channel)  # type: ignore[no-untyped-call]
        await controller.FetchMetadata(cluster_pb2.FetchMetadataRequest(), timeout=10)


def _scrape(url: str, context: ssl.SSLContext, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}
                                     if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_metrics_over_tls_need_a_certificate_and_the_token(secured: BrokerProcess,
                                                           pki: Pki) -> None:
    url = f"https://127.0.0.1:{secured.metrics_port}/metrics"
    mutual = ssl.create_default_context(cafile=str(pki.ca))
    mutual.check_hostname = False
    mutual.load_cert_chain(pki.client_cert, pki.client_key)
    status, body = _scrape(url, mutual, TOKEN)
    assert status == 200 and "odradek_" in body
    assert _scrape(url, mutual, None)[0] == 401
    assert _scrape(url, mutual, "wrong")[0] == 401
    anonymous = ssl.create_default_context(cafile=str(pki.ca))
    anonymous.check_hostname = False
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _scrape(url, anonymous, TOKEN)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{secured.metrics_port}/metrics", timeout=10)
    assert secured.serving()


def test_a_broker_whose_certificate_is_not_a_broker_principal_refuses_to_start(
        tmp_path: Path, pki: Pki) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    proc = BrokerProcess(tmp_path / "b", tls=client_tls(pki), extra_args=_args(
        pki, token_file, "--broker-principal", "User:node"))
    try:
        with pytest.raises(RuntimeError, match="broker exited"):
            proc.start()
        assert "maps to User:broker, which is not one of --broker-principal" in proc.log()
    finally:
        proc.stop()


def test_an_observer_with_authorization_and_no_mutual_tls_refuses_to_start(
        tmp_path: Path) -> None:
    """A broker outside the voter set talks to the others as voters do: by certificate."""
    proc = BrokerProcess(tmp_path / "b", extra_args=[
        "--broker-id", "5", "--voters", f"0=127.0.0.1:{free_port()}",
        "--authorization", "on", "--super-users", "User:admin"])
    try:
        with pytest.raises(RuntimeError, match="broker exited"):
            proc.start()
        assert "a cluster of several brokers needs TLS with --tls-client-auth required" \
            in proc.log()
    finally:
        proc.stop()
