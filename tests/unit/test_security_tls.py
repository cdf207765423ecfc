"""TLS settings from options and environment; the reloader that follows files on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from odradek.security.certs import issue, load_pair, make_pki, write_pair
from odradek.security.tls import CertificateReloader, ClientTLS, ServerTLS, TLSConfigError


def test_client_tls_from_options_and_environment(tmp_path: Path) -> None:
    assert ClientTLS.from_options(env={}) is None
    assert ClientTLS.from_options(tls=True, env={}) == ClientTLS()
    env = {"ODRADEK_TLS_CA": "/ca.pem", "ODRADEK_TLS_CERT": "/c.pem", "ODRADEK_TLS_KEY": "/k.pem"}
    assert ClientTLS.from_options(env=env) == ClientTLS(Path("/ca.pem"), Path("/c.pem"),
                                                        Path("/k.pem"))
    assert ClientTLS.from_options(tls_ca="/other.pem", env=env) == ClientTLS(
        Path("/other.pem"), Path("/c.pem"), Path("/k.pem"))
    assert ClientTLS.from_options(tls=False, env=env) is None
    assert ClientTLS.from_options(env={"ODRADEK_TLS": "1"}) == ClientTLS()
    with pytest.raises(TLSConfigError):
        ClientTLS.from_options(tls_cert="/c.pem", env={})


def test_server_name_checked_instead_of_the_address(tmp_path: Path) -> None:
    """A name to check in the server's certificate: from the option or the environment,
    a DNS name or refused, and handed to gRPC as the target name override."""
    assert ClientTLS.from_options(tls=True, env={}).channel_options() == []  # type: ignore[union-attr]
    named = ClientTLS.from_options(tls=True, env={"ODRADEK_TLS_SERVER_NAME": "b-0.b.ns.svc"})
    assert named == ClientTLS(server_name="b-0.b.ns.svc")
    assert named.channel_options() == [("grpc.ssl_target_name_override", "b-0.b.ns.svc")]
    assert ClientTLS.from_options(tls=True, server_name="x.y", env={
        "ODRADEK_TLS_SERVER_NAME": "b"}) == ClientTLS(server_name="x.y")
    for bad in ("", "a..b", "-a.b", "a b", "x" * 254):
        with pytest.raises(TLSConfigError, match="not a DNS name"):
            ClientTLS(server_name=bad)
    pki = make_pki(tmp_path / "pki")
    with pytest.raises(TLSConfigError, match="not a DNS name"):
        ServerTLS(pki.broker_cert, pki.broker_key, pki.ca, "required", "10.0.0.1:9092")
    assert ServerTLS(pki.broker_cert, pki.broker_key, pki.ca, "required",
                     "b-1.b.ns.svc").client().server_name == "b-1.b.ns.svc"


def test_server_tls_checks(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    with pytest.raises(TLSConfigError):
        ServerTLS(pki.broker_cert, pki.broker_key, None, "required")
    with pytest.raises(TLSConfigError):
        ServerTLS(pki.broker_cert, tmp_path / "missing.pem")
    with pytest.raises(TLSConfigError):
        ServerTLS(pki.broker_cert, pki.broker_key, pki.ca, "sometimes")
    assert ServerTLS(pki.broker_cert, pki.broker_key, pki.ca, "required").require_client_auth


def test_reloader_follows_files(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    reloader = CertificateReloader(ServerTLS(pki.broker_cert, pki.broker_key, pki.ca, "required"))
    reloader.credentials()
    assert reloader.fetch() is None  # unchanged
    ca_cert, ca_key = load_pair(pki.ca, pki.ca_key)
    cert, key = issue(ca_cert, ca_key, "broker")
    # Half a rotation (new certificate, old key): keep the old configuration.
    write_pair(cert, load_pair(pki.broker_cert, pki.broker_key)[1], pki.broker_cert,
               tmp_path / "unused-key.pem")
    os.utime(pki.broker_cert, ns=(1, 1))
    assert reloader.fetch() is None
    write_pair(cert, key, pki.broker_cert, pki.broker_key)
    assert reloader.fetch() is not None
    assert reloader.reloads == 1
    assert reloader.fetch() is None
