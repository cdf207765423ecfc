"""User domain logic: ACL rules from the spec, their diff, the credentials Secret."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from odradek.client.acls import CLUSTER_NAME, acl, describe
from odradek.operator import users as u
from odradek.security.certs import load_pair, make_pki

SPEC = {"authentication": {"type": "scram-sha-512"}, "authorization": {"acls": [
    {"resource": {"type": "topic", "name": "orders", "patternType": "prefixed"},
     "operations": ["read", "describe"]},
    {"resource": {"type": "topic", "name": "*"}, "operations": ["delete"], "type": "deny"},
    {"resource": {"type": "cluster"}, "operations": ["idempotent_write"], "host": "10.0.0.1"},
]}}


def test_rules_from_the_spec() -> None:
    assert u.desired_rules("billing", SPEC) == {
        u.Rule("User:billing", "topic", "orders", "prefixed", "read", "allow"),
        u.Rule("User:billing", "topic", "orders", "prefixed", "describe", "allow"),
        u.Rule("User:billing", "topic", "*", "literal", "delete", "deny"),
        u.Rule("User:billing", "cluster", CLUSTER_NAME, "literal", "idempotent_write",
               "allow", "10.0.0.1"),
    }


def test_rules_match_what_the_client_describes() -> None:
    # The diff compares the brokers' bindings (via acls.describe) with the spec's rules.
    rule = u.Rule("User:a", "group", "g", "literal", "read", "allow")
    binding = acl(rule.principal, rule.resource_type, rule.resource_name, rule.operation,
                  rule.permission, rule.pattern_type, rule.host)
    assert u.Rule(**describe(binding)) == rule


def test_diff_adds_the_missing_and_removes_the_rest() -> None:
    keep = u.Rule("User:a", "topic", "t", "literal", "read", "allow")
    new = u.Rule("User:a", "topic", "t", "literal", "write", "allow")
    stray = u.Rule("User:a", "topic", "x", "literal", "read", "allow")
    assert u.rules_diff({keep, new}, [keep, stray]) == ([new], [stray])
    assert u.rules_diff({keep}, [keep]) == ([], [])


@pytest.mark.parametrize("spec", [{"authentication": {"type": "kerberos"}}, {},
                                  {"authentication": {"type": "scram-sha-512"},
                                   "authorization": {"acls": [
                                       {"resource": {"type": "topic"}, "operations": ["read"]}]}}])
def test_unsupported_specs(spec: dict[str, object]) -> None:
    with pytest.raises(u.SpecError):
        u.desired_rules("a", spec)


def test_secret_is_owned_and_holds_the_credentials() -> None:
    owner = {"apiVersion": "odradek.io/v1alpha1", "kind": "User",
             "metadata": {"name": "billing", "uid": "u-1"}}
    password = u.new_password()
    assert len(password) >= 32 and password != u.new_password()
    body = u.secret_body("billing", "ns", owner, password, "b:9092")
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert body["metadata"]["name"] == u.secret_name("billing")
    assert u.password_of(body) == password
    assert set(body["data"]) == {"username", "password", "sasl.mechanism", "bootstrap"}


def test_tls_user_certificate_and_renewal(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    owner = {"apiVersion": "odradek.io/v1alpha1", "kind": "User",
             "metadata": {"name": "erin", "uid": "u-2"}}
    ca = load_pair(pki.ca, pki.ca_key)
    files = u.issue_certificate("erin", *ca)
    assert files["ca.crt"] == pki.ca.read_bytes()
    secret = u.tls_secret_body("erin", "ns", owner, files)
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    assert not u.needs_certificate(secret, "erin")
    assert u.needs_certificate(None, "erin")
    assert u.needs_certificate(secret, "frank")  # another user's certificate
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=u.CERT_DAYS) - u.RENEW_BEFORE
    assert u.needs_certificate(secret, "erin", now=later + dt.timedelta(hours=1))
    assert not u.needs_certificate(secret, "erin", now=later - dt.timedelta(days=1))
    # Signed by the CA it should be, by signature: another CA of the same name is not it.
    assert not u.needs_certificate(secret, "erin", ca=ca[0])
    other = make_pki(tmp_path / "other")
    assert u.needs_certificate(secret, "erin", ca=load_pair(other.ca, other.ca_key)[0])
    assert u.desired_rules("erin", {"authentication": {"type": "tls"}}) == set()
