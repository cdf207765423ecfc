"""User resources, as plain functions: the ACL bindings a spec asks for, the difference
to what the brokers hold, and the Secret with the credentials."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from odradek.client.acls import CLUSTER_NAME
from odradek.security.certs import Key, issue

MECHANISM = "SCRAM-SHA-512"
PASSWORD_BYTES = 24
AUTH_TYPES = ("scram-sha-512", "tls")
CERT_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=30)


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
    auth = authentication(spec)
    if auth not in AUTH_TYPES:
        raise SpecError(f"authentication must be one of {', '.join(AUTH_TYPES)}, not {auth!r}")
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


def authentication(spec: Mapping[str, Any]) -> str | None:
    value = (spec.get("authentication") or {}).get("type")
    return str(value) if value else None


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
    return credentials_secret(secret_name(user), namespace, {
        "app.kubernetes.io/managed-by": "odradek-operator", "odradek.io/user": user},
        _owner_ref(owner), user, password, bootstrap)


def credentials_secret(name: str, namespace: str, labels: Mapping[str, str],
                       owner_ref: Mapping[str, Any], username: str, password: str,
                       bootstrap: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                     "ownerReferences": [dict(owner_ref)]},
        "data": {"username": _b64(username), "password": _b64(password),
                 "sasl.mechanism": _b64(MECHANISM), "bootstrap": _b64(bootstrap)},
    }


def password_of(secret: Mapping[str, Any]) -> str | None:
    value = (secret.get("data") or {}).get("password")
    return base64.b64decode(value).decode() if value else None


# -- tls users: a client certificate from the cluster CA (its CN is the principal) --------

def _owner_ref(owner: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def issue_certificate(user: str, ca_cert: x509.Certificate, ca_key: Key,
                      now: dt.datetime | None = None) -> dict[str, bytes]:
    """ca.crt, tls.crt and tls.key (PEM) for a client certificate with CN=<user>."""
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=5)
    cert, key = issue(ca_cert, ca_key, user, sans=(), server=False, not_before=start,
                      not_after=start + dt.timedelta(days=CERT_DAYS))
    return {"ca.crt": ca_cert.public_bytes(serialization.Encoding.PEM),
            "tls.crt": cert.public_bytes(serialization.Encoding.PEM),
            "tls.key": key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())}


def tls_secret_body(user: str, namespace: str, owner: Mapping[str, Any],
                    files: Mapping[str, bytes]) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": secret_name(user), "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "odradek-operator",
                                "odradek.io/user": user},
                     "ownerReferences": [_owner_ref(owner)]},
        "data": {k: base64.b64encode(v).decode() for k, v in files.items()},
    }


def certificate_of(secret: Mapping[str, Any] | None) -> x509.Certificate | None:
    value = ((secret or {}).get("data") or {}).get("tls.crt")
    if not value:
        return None
    try:
        return x509.load_pem_x509_certificate(base64.b64decode(value))
    except ValueError:
        return None


def needs_certificate(secret: Mapping[str, Any] | None, user: str,
                      now: dt.datetime | None = None,
                      ca: x509.Certificate | None = None) -> bool:
    """No certificate, another user's, one that expires within RENEW_BEFORE, or one
    another CA signed than `ca` (a Cluster's CA made anew, a User moved to another)."""
    cert = certificate_of(secret)
    if cert is None:
        return True
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not names or names[0].value != user:
        return True
    if ca is not None:
        try:
            cert.verify_directly_issued_by(ca)  # by signature: a new CA may keep the name
        except (ValueError, TypeError, InvalidSignature):
            return True
    return cert.not_valid_after_utc - (now or dt.datetime.now(dt.UTC)) < RENEW_BEFORE
