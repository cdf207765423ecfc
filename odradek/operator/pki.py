"""A Cluster's TLS, as plain functions: the CA the operator generates (or is given), the
broker certificate it signs for the headless Service's names, and when either is renewed.

One broker certificate serves every broker: its SANs are wildcards over the headless
Service, so a scale-up needs no new certificate. Brokers reload certificates without a
restart, so a renewal changes the Secret only; the kubelet refreshes the mounted files."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from odradek.security.certs import Key, issue, make_ca

CA_DAYS = 5 * 365
CERT_DAYS = 365
# Renewed this long before expiry: a month of resyncs to notice a failure and fix it.
RENEW_BEFORE = dt.timedelta(days=30)
MOUNT = "/etc/odradek/tls"
Body = dict[str, Any]


@dataclass(frozen=True)
class TLSSpec:
    """spec.tls: secret_name is a broker certificate Secret of the user's own (tls.crt,
    tls.key, ca.crt), in which case the operator issues nothing; else the operator signs
    one with the CA in ca_secret_name, which it generates when absent."""

    secret_name: str | None
    ca_secret_name: str


def ca_secret(cluster: str) -> str:
    return f"{cluster}-ca"


def broker_secret(cluster: str) -> str:
    return f"{cluster}-broker-tls"


def tls_spec(spec: Mapping[str, Any], cluster: str) -> TLSSpec | None:
    tls = spec.get("tls") or {}
    if not tls.get("enabled"):
        return None
    return TLSSpec(tls.get("secretName") or None, tls.get("caSecretName") or ca_secret(cluster))


def mounted_secret(t: TLSSpec, cluster: str) -> str:
    """The Secret the brokers mount (and the operator's client reads)."""
    return t.secret_name or broker_secret(cluster)


def sans(cluster: str, namespace: str) -> tuple[str, ...]:
    """Every name a broker is dialled by: its pod name under the headless Service (short
    and fully qualified), and the client Service."""
    headless = f"{cluster}-brokers"
    names = []
    for domain in (f"{namespace}.svc", f"{namespace}.svc.cluster.local"):
        names += [f"*.{headless}.{domain}", f"{cluster}-bootstrap.{domain}"]
    return (*names, f"{cluster}-bootstrap.{namespace}")


# -- Secret contents -----------------------------------------------------------------------

def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def decoded(secret: Mapping[str, Any] | None, key: str) -> bytes | None:
    value = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(value) if value else None


def _cert(secret: Mapping[str, Any] | None, key: str = "tls.crt") -> x509.Certificate | None:
    data = decoded(secret, key)
    if not data:
        return None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        return None


def _expiring(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_after_utc - now < RENEW_BEFORE


def ca_pair(secret: Mapping[str, Any] | None) -> tuple[x509.Certificate, Key] | None:
    """The CA in a kubernetes.io/tls Secret (tls.crt, tls.key), as the Helm chart makes it."""
    cert, key_pem = _cert(secret), decoded(secret, "tls.key")
    if cert is None or not key_pem:
        return None
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the cluster CA key must be an EC key")
    return cert, key


def needs_ca(secret: Mapping[str, Any] | None, now: dt.datetime) -> bool:
    pair = ca_pair(secret)
    return pair is None or _expiring(pair[0], now)


def needs_broker_cert(secret: Mapping[str, Any] | None, ca: x509.Certificate,
                      names: tuple[str, ...], now: dt.datetime) -> bool:
    """Missing, not signed by this CA, not covering the names, or expiring soon."""
    cert = _cert(secret)
    if cert is None or _expiring(cert, now):
        return True
    try:
        # By signature, not by name: a CA made anew may carry the same subject.
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return True
    try:
        covered = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        return True
    return not set(names) <= set(covered)


def broker_files(ca: x509.Certificate, ca_key: Key, cluster: str, names: tuple[str, ...],
                 now: dt.datetime, trusted: bytes = b"") -> dict[str, bytes]:
    """tls.crt, tls.key and ca.crt for the brokers (server and client use: they dial each
    other with it). trusted: CA certificates trusted besides this one (a CA being
    replaced, so brokers not yet reloaded still verify)."""
    start = now - dt.timedelta(minutes=5)
    cert, key = issue(ca, ca_key, f"{cluster}-broker", sans=names, not_before=start,
                      not_after=start + dt.timedelta(days=CERT_DAYS))
    return {"tls.crt": _pem(cert), "tls.key": _key_pem(key), "ca.crt": _pem(ca) + trusted}


def ca_files(ca: x509.Certificate, key: Key) -> dict[str, bytes]:
    return {"tls.crt": _pem(ca), "tls.key": _key_pem(key)}


def secret_body(name: str, namespace: str, meta_labels: Mapping[str, str],
                owner_ref: Mapping[str, Any] | None, files: Mapping[str, bytes]) -> Body:
    meta: Body = {"name": name, "namespace": namespace, "labels": dict(meta_labels)}
    if owner_ref is not None:
        meta["ownerReferences"] = [dict(owner_ref)]
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": meta,
            "data": {k: base64.b64encode(v).decode() for k, v in files.items()}}


@dataclass(frozen=True)
class TLSPlan:
    """What to write: the CA Secret (None: keep it) and the broker Secret (None: keep)."""

    ca: dict[str, bytes] | None
    broker: dict[str, bytes] | None


def _still_trusted(broker_secret_body: Mapping[str, Any] | None, ca: x509.Certificate,
                   now: dt.datetime) -> bytes:
    """The CAs the brokers trust now, other than `ca` and not expired: kept in ca.crt
    while the brokers move to a new CA, as each reloads its files at its own moment."""
    bundle = decoded(broker_secret_body, "ca.crt")
    if not bundle:
        return b""
    try:
        certs = x509.load_pem_x509_certificates(bundle)
    except ValueError:
        return b""
    return b"".join(_pem(c) for c in certs if c != ca and c.not_valid_after_utc > now)


def plan(cluster: str, namespace: str, ca_secret_body: Mapping[str, Any] | None,
         broker_secret_body: Mapping[str, Any] | None, now: dt.datetime,
         own_ca: bool = True) -> TLSPlan:
    """A generated CA when there is none or it expires soon, and a broker certificate
    when it is missing, not from the current CA, short of a name, or expiring soon. A
    replaced CA stays trusted (in ca.crt) until it expires. own_ca: False for a CA Secret
    someone else renews (the Helm chart's, cert-manager's): it is only read."""
    ca_out: dict[str, bytes] | None = None
    if ca_pair(ca_secret_body) is None and not own_ca:
        raise ValueError("the CA Secret has no tls.crt and tls.key")
    if own_ca and needs_ca(ca_secret_body, now):
        ca, key = make_ca(f"{cluster} cluster CA", days=CA_DAYS)
        ca_out = ca_files(ca, key)
    else:
        pair = ca_pair(ca_secret_body)
        assert pair is not None
        ca, key = pair
    names = sans(cluster, namespace)
    if ca_out is None and not needs_broker_cert(broker_secret_body, ca, names, now):
        return TLSPlan(None, None)
    return TLSPlan(ca_out, broker_files(ca, key, cluster, names, now,
                                        _still_trusted(broker_secret_body, ca, now)))
