"""TLS for gRPC: client credentials read from files, and server credentials that pick up
rewritten certificate and key files on the next handshake, without a restart."""

from __future__ import annotations

import logging
import os
import re
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger("odradek.security")

ENV_CA = "ODRADEK_TLS_CA"
ENV_CERT = "ODRADEK_TLS_CERT"
ENV_KEY = "ODRADEK_TLS_KEY"
ENV_TLS = "ODRADEK_TLS"
ENV_SERVER_NAME = "ODRADEK_TLS_SERVER_NAME"

CLIENT_AUTH_CHOICES = ("none", "required")
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*")


class TLSConfigError(ValueError):
    """TLS settings that cannot work (a key without a certificate, a missing file)."""


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


@dataclass(frozen=True)
class ClientTLS:
    """How a client (or a broker dialing another broker) speaks TLS.

    ``ca``: the bundle that signs the servers' certificates (None: the system roots).
    ``cert``/``key``: this side's certificate for mutual TLS (both or neither).
    ``server_name``: the name checked in the server's certificate instead of the host of
    the address dialled (an address that is an IP, a tunnel or a port-forward).
    The files are read every time credentials are made, so a channel created after a
    rotation presents the new certificate."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise TLSConfigError("a client certificate needs its key, and a key its certificate")
        if self.server_name is not None and not _HOSTNAME.fullmatch(self.server_name):
            raise TLSConfigError(f"TLS server name {self.server_name!r} is not a DNS name")

    def channel_options(self) -> list[tuple[str, Any]]:
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]

    def credentials(self) -> grpc.ChannelCredentials:
        try:
            return grpc.ssl_channel_credentials(
                root_certificates=_read(self.ca), private_key=_read(self.key),
                certificate_chain=_read(self.cert))
        except OSError as exc:
            raise TLSConfigError(f"cannot read TLS file: {exc}") from None

    @classmethod
    def from_options(
        cls,
        tls: bool | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        server_name: str | None = None,
    ) -> ClientTLS | None:
        """TLS settings from a client's options, each falling back to its environment
        variable (ODRADEK_TLS_CA, ODRADEK_TLS_CERT, ODRADEK_TLS_KEY; ODRADEK_TLS=1 for TLS
        with the system roots; ODRADEK_TLS_SERVER_NAME, the server name to check). None:
        plaintext. ``tls=False`` forces plaintext."""
        env = os.environ if env is None else env
        if tls is False:
            return None
        ca = tls_ca or env.get(ENV_CA) or None
        cert = tls_cert or env.get(ENV_CERT) or None
        key = tls_key or env.get(ENV_KEY) or None
        wanted = tls or env.get(ENV_TLS, "").lower() in ("1", "true", "yes", "on")
        if not (wanted or ca or cert or key):
            return None
        return cls(Path(ca) if ca else None, Path(cert) if cert else None,
                   Path(key) if key else None, server_name or env.get(ENV_SERVER_NAME) or None)


def open_channel(address: str, tls: ClientTLS | None,
                 options: Sequence[tuple[str, Any]] = (),
                 interceptors: Sequence[Any] | None = None) -> grpc.aio.Channel:
    """A grpc.aio channel to ``address``: TLS when ``tls`` is given, plaintext otherwise."""
    if tls is None:
        return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(address, tls.credentials(),
                                   options=[*options, *tls.channel_options()],
                                   interceptors=interceptors)


@dataclass(frozen=True)
class ServerTLS:
    """A broker's TLS identity and listener policy.

    ``cert``/``key``: the broker's certificate (chain) and key, also presented as its
    client certificate when it dials other brokers. ``ca``: the bundle that signs client
    and broker certificates. ``client_auth``: "required" (mutual TLS: a client without a
    certificate signed by ``ca`` cannot connect) or "none". ``peer_server_name``: the
    name checked in other brokers' certificates when their addresses do not carry it."""

    cert: Path
    key: Path
    ca: Path | None = None
    client_auth: str = "none"
    peer_server_name: str | None = None

    def __post_init__(self) -> None:
        if self.client_auth not in CLIENT_AUTH_CHOICES:
            raise TLSConfigError(
                f"--tls-client-auth must be one of {', '.join(CLIENT_AUTH_CHOICES)}, "
                f"not {self.client_auth!r}")
        if self.client_auth == "required" and self.ca is None:
            raise TLSConfigError("--tls-client-auth required needs --tls-ca")
        for path in (self.cert, self.key, self.ca):
            if path is not None and not path.is_file():
                raise TLSConfigError(f"TLS file not found: {path}")
        if self.peer_server_name is not None:
            ClientTLS(server_name=self.peer_server_name)  # the same check as a client's

    @property
    def require_client_auth(self) -> bool:
        return self.client_auth == "required"

    def client(self) -> ClientTLS:
        """What this broker presents and trusts when it dials another broker."""
        return ClientTLS(self.ca, self.cert, self.key, self.peer_server_name)

    def server_credentials(self) -> grpc.ServerCredentials:
        return CertificateReloader(self).credentials()

    def ssl_context(self) -> ssl.SSLContext:
        """The same identity and client policy for a plain TLS server (the metrics)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        if self.ca is not None:
            context.load_verify_locations(self.ca)
        context.verify_mode = ssl.CERT_REQUIRED if self.require_client_auth else ssl.CERT_NONE
        return context


def _key_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError:
        return False
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bool(cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt))


class CertificateReloader:
    """Dynamic server credentials: grpc asks the fetcher before each handshake; it
    answers a new configuration when the certificate, key or CA file changed on disk
    (size or modification time), and None (keep the current one) otherwise."""

    def __init__(self, tls: ServerTLS) -> None:
        self.tls = tls
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self.reloads = 0

    def _paths(self) -> list[Path]:
        return [p for p in (self.tls.cert, self.tls.key, self.tls.ca) if p is not None]

    def _stat(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for path in self._paths():
            try:
                st = path.stat()
            except OSError:
                stamps.append((-1, -1))
            else:
                stamps.append((st.st_mtime_ns, st.st_size))
        return tuple(stamps)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        key, cert = self.tls.key.read_bytes(), self.tls.cert.read_bytes()
        if b"PRIVATE KEY" not in key or b"CERTIFICATE" not in cert:
            raise TLSConfigError("certificate or key file is not PEM")
        if not _key_matches(cert, key):
            raise TLSConfigError("the certificate does not match the key (mid-rotation?)")
        return grpc.ssl_server_certificate_configuration(
            [(key, cert)], root_certificates=_read(self.tls.ca))

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            stamp = self._stat()
            if stamp == self._stamp:
                return None
            try:
                config = self._configuration()
            except (OSError, TLSConfigError) as exc:
                # Half-written files: keep serving the old certificate, retry next time.
                log.warning("TLS files changed but cannot be loaded yet: %s", exc)
                return None
            self._stamp = stamp
            self.reloads += 1
            log.info("TLS certificate reloaded from %s", self.tls.cert)
            return config

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(), self.fetch,
            require_client_authentication=self.tls.require_client_auth)
