"""Users and ACLs in the metadata image, the authorizer's rules, certificate principals
and broker-local SCRAM sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.broker.auth.authorizer import Authorizer
from odradek.broker.auth.sessions import AuthenticationFailed, Sessions
from odradek.broker.metadata.image import MetadataImage, apply, decode_snapshot, encode_snapshot
from odradek.broker.metadata.security import (
    OPERATIONS,
    Acl,
    CreateAcls,
    DeleteAcls,
    DeleteUser,
    SecurityState,
    UpsertUser,
    UserCredential,
    check_acl,
    matching_acls,
)
from odradek.security import certs, scram
from odradek.security.principal import PrincipalRule, PrincipalRuleError, principal_of_certificate
from tests.unit.metadata_strategies import acls, security_commands


def allow(principal: str, rtype: str, name: str, op: str, pattern: str = "literal",
          host: str = "*") -> Acl:
    return Acl(principal, rtype, name, pattern, op, "allow", host)


def deny(principal: str, rtype: str, name: str, op: str, pattern: str = "literal",
         host: str = "*") -> Acl:
    return Acl(principal, rtype, name, pattern, op, "deny", host)


# --- the image ------------------------------------------------------------------------


def test_users_and_acls_apply_and_survive_a_snapshot() -> None:
    image = MetadataImage()
    good = allow("User:alice", "topic", "orders", "read")
    bad = allow("alice", "topic", "orders", "read")  # not User:...
    for offset, cmd in enumerate([
        UpsertUser("alice", scram.MECHANISM, b"s" * 16, 4096, b"k" * 64, b"v" * 64),
        UpsertUser("bob", scram.MECHANISM, b"t" * 16, 5000, b"l" * 64, b"w" * 64),
        DeleteUser("bob"),
        CreateAcls((good, bad)),
    ]):
        image = apply(image, offset, cmd)
    assert set(image.security.users) == {"alice"}
    assert image.security.acls == frozenset({good})
    assert decode_snapshot(encode_snapshot(image)) == image
    image = apply(image, 10, DeleteAcls((good,)))
    assert image.security.acls == frozenset()


def test_snapshot_from_before_users_reads_as_empty() -> None:
    data = encode_snapshot(MetadataImage()).replace(b',"security":{"acls":[],"users":[]}', b"")
    assert b"security" not in data
    assert decode_snapshot(data).security == SecurityState()


@settings(max_examples=200, deadline=None)
@given(st.lists(security_commands(st.sampled_from(["orders", "ord", "x"])), max_size=20))
def test_any_security_history_round_trips_through_a_snapshot(cmds: list) -> None:
    image = MetadataImage()
    for offset, cmd in enumerate(cmds):
        image = apply(image, offset, cmd)
    assert decode_snapshot(encode_snapshot(image)) == image
    assert all(check_acl(a) is None for a in image.security.acls)


def test_check_acl_messages() -> None:
    assert check_acl(allow("User:a", "cluster", "other", "alter")) is not None
    assert check_acl(allow("User:a", "topic", "*", "read", "prefixed")) is not None
    assert check_acl(Acl("User:a", "topic", "t", "literal", "fly", "allow")) is not None
    assert check_acl(allow("User:a", "topic", "t", "read")) is None


def test_matching_acls_filters_on_given_fields_only() -> None:
    a, b = allow("User:a", "topic", "t", "read"), deny("User:b", "topic", "t", "read")
    assert matching_acls({a, b}, principal=None, permission="deny") == [b]
    assert matching_acls({a, b}, resource_name="t") == sorted([a, b])


# --- the authorizer -------------------------------------------------------------------


def test_literal_prefixed_and_wildcard_names() -> None:
    az = Authorizer([allow("User:a", "topic", "orders", "read"),
                     allow("User:a", "topic", "logs-", "write", "prefixed"),
                     allow("User:*", "topic", "*", "describe")])
    assert az.allowed("User:a", "h", "topic", "orders", "read")
    assert not az.allowed("User:a", "h", "topic", "orders2", "read")
    assert az.allowed("User:a", "h", "topic", "logs-app", "write")
    assert not az.allowed("User:a", "h", "topic", "logs", "write")
    assert az.allowed("User:zed", "h", "topic", "anything", "describe")
    assert not az.allowed("User:zed", "h", "group", "anything", "describe")


def test_implied_operations() -> None:
    for op in ("read", "write", "delete", "alter"):
        assert Authorizer([allow("User:a", "topic", "t", op)]).allowed(
            "User:a", "h", "topic", "t", "describe")
    assert Authorizer([allow("User:a", "topic", "t", "alter_configs")]).allowed(
        "User:a", "h", "topic", "t", "describe_configs")
    assert not Authorizer([allow("User:a", "topic", "t", "describe")]).allowed(
        "User:a", "h", "topic", "t", "read")
    assert Authorizer([allow("User:a", "topic", "t", "all")]).allowed(
        "User:a", "h", "topic", "t", "alter_configs")


def test_host_filter_super_users_and_off() -> None:
    az = Authorizer([allow("User:a", "topic", "t", "read", host="10.0.0.1")],
                    super_users=["User:root"])
    assert az.allowed("User:a", "10.0.0.1", "topic", "t", "read")
    assert not az.allowed("User:a", "10.0.0.2", "topic", "t", "read")
    assert az.allowed("User:root", "x", "cluster", "odradek-cluster", "alter")
    assert not az.allowed("User:b", "x", "topic", "t", "read")  # default deny
    assert Authorizer([], enabled=False).allowed("User:b", "x", "topic", "t", "delete")


def test_write_on_some_topic_for_idempotent_producers() -> None:
    az = Authorizer([allow("User:a", "topic", "t", "write"),
                     allow("User:b", "topic", "t", "read"),
                     allow("User:c", "topic", "t", "write"), deny("User:c", "topic", "*", "all")])
    assert az.allowed_for_some("User:a", "h", "topic", "write")
    assert not az.allowed_for_some("User:b", "h", "topic", "write")
    assert not az.allowed_for_some("User:c", "h", "topic", "write")


@settings(max_examples=300, deadline=None)
@given(rules=st.lists(acls(st.sampled_from(["t", "t2", "x"])), max_size=8),
       op=st.sampled_from([o for o in OPERATIONS if o != "all"]),
       name=st.sampled_from(["t", "t2", "x", "y"]),
       principal=st.sampled_from(["User:alice", "User:bob"]))
def test_deny_wins_and_allow_needs_a_binding(rules: list[Acl], op: str, name: str,
                                             principal: str) -> None:
    valid = [r for r in rules if check_acl(r) is None]
    decision = Authorizer(valid).allowed(principal, "127.0.0.1", "topic", name, op)
    matching = [r for r in valid if r.principal in (principal, "User:*")
                and r.resource_type == "topic" and r.host in ("*", "127.0.0.1")
                and (name.startswith(r.resource_name) if r.pattern_type == "prefixed"
                     else r.resource_name in ("*", name))]
    denied = any(r.permission == "deny" and r.operation in (op, "all") for r in matching)
    if denied:
        assert not decision
    # Adding a matching deny never turns a refusal into an allow, and always refuses.
    assert not Authorizer([*valid, deny(principal, "topic", name, op)]).allowed(
        principal, "127.0.0.1", "topic", name, op)
    if decision:
        assert any(r.permission == "allow" for r in matching)


# --- certificate principals -----------------------------------------------------------


@pytest.fixture(scope="module")
def cert_pem(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    ca_cert, ca_key = certs.make_ca()
    cert, _ = certs.issue(ca_cert, ca_key, "alice", sans=("alice.example.com",), server=False)
    return cert.public_bytes(serialization.Encoding.PEM)


def test_default_principal_is_the_cn(cert_pem: bytes) -> None:
    assert principal_of_certificate(cert_pem) == "User:alice"


def test_rules_on_subject_and_sans(cert_pem: bytes) -> None:
    rule = PrincipalRule.parse(r"RULE:^CN=([^,]+).*$/svc-$1/")
    assert principal_of_certificate(cert_pem, (rule,)) == "User:svc-alice"
    san = PrincipalRule.parse(r"SAN:^DNS:([a-z]+)\.example\.com$/$1-dns/")
    assert principal_of_certificate(cert_pem, (san,)) == "User:alice-dns"
    nothing = PrincipalRule.parse(r"RULE:^CN=bob$/bob/")
    assert principal_of_certificate(cert_pem, (nothing,)) is None
    assert principal_of_certificate(cert_pem, (nothing, PrincipalRule.parse("DEFAULT"))) == \
        "User:alice"
    for bad in ("RULE:abc", "OTHER:a/b/", "RULE:(/x/"):
        with pytest.raises(PrincipalRuleError):
            PrincipalRule.parse(bad)


# --- sessions -------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _login(sessions: Sessions, user: str, password: str) -> str:
    client = scram.ClientExchange(user, password)
    exchange_id, first = sessions.start(client.first())
    final, token, _ = sessions.finish(exchange_id, client.final(first))
    client.verify_server(final)
    return token


def test_sessions_expire_and_end_when_the_password_changes() -> None:
    c = scram.make_credential("pw", 4096)
    users = {"alice": UserCredential(scram.MECHANISM, c.salt, c.iterations, c.stored_key,
                                     c.server_key)}
    clock = Clock()
    sessions = Sessions(lambda: users, lifetime_s=60, clock=clock)
    token = _login(sessions, "alice", "pw")
    assert sessions.lookup(token) is not None
    clock.now += 61
    assert sessions.lookup(token) is None
    token = _login(sessions, "alice", "pw")
    c2 = scram.make_credential("new", 4096)
    users["alice"] = UserCredential(scram.MECHANISM, c2.salt, 4096, c2.stored_key, c2.server_key)
    assert sessions.lookup(token) is None


def test_unknown_user_and_wrong_password_look_alike() -> None:
    c = scram.make_credential("pw", 4096)
    users = {"alice": UserCredential(scram.MECHANISM, c.salt, 4096, c.stored_key,
                                     c.server_key)}
    sessions = Sessions(lambda: users)
    errors = []
    for user, password in (("alice", "nope"), ("mallory", "pw")):
        client = scram.ClientExchange(user, password)
        exchange_id, first = sessions.start(client.first())
        assert set(dict(p.split("=", 1) for p in first.split(","))) == {"r", "s", "i"}
        with pytest.raises(AuthenticationFailed):
            sessions.finish(exchange_id, client.final(first))
        errors.append(first.count(","))
    assert errors[0] == errors[1]
    # An unknown user's made-up salt is the same on every attempt (no tell-tale change).
    firsts = [sessions.start(scram.ClientExchange("mallory", "x").first())[1] for _ in range(2)]
    assert firsts[0].split(",")[1] == firsts[1].split(",")[1]
    with pytest.raises(AuthenticationFailed):
        sessions.finish("no-such-exchange", "c=biws,r=x,p=AAAA")


# --- broker flags ---------------------------------------------------------------------


def _broker_args(*argv: str) -> Any:
    from odradek.cli.main import build_parser

    return build_parser().parse_args(["broker", "--data-dir", "/tmp/x", *argv])


def test_broker_security_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from odradek.cli.broker_run import security_settings

    pw = tmp_path / "pw"
    pw.write_text("hunter2\nignored\n")
    s = security_settings(_broker_args(
        "--authorization", "on", "--super-users", "User:a;User:b", "--tls-principal-rule",
        "RULE:^CN=([^,]+).*$/$1/", "--tls-principal-rule", "DEFAULT", "--bootstrap-user",
        "root", "--bootstrap-password-file", str(pw)))
    assert s.authorization and s.super_users == {"User:a", "User:b"}
    assert [r.kind for r in s.principal_rules] == ["RULE", "DEFAULT"]
    assert s.bootstrap_user == ("root", "hunter2") and "hunter2" not in repr(s)
    assert not security_settings(_broker_args()).authorization
    monkeypatch.setenv("ODRADEK_AUTHORIZATION", "on")
    monkeypatch.setenv("ODRADEK_SUPER_USERS", "User:env")
    assert security_settings(_broker_args()).super_users == {"User:env"}
    for bad in (["--super-users", "admin"], ["--tls-principal-rule", "RULE:x"],
                ["--bootstrap-user", "root"]):
        monkeypatch.delenv("ODRADEK_BOOTSTRAP_PASSWORD", raising=False)
        with pytest.raises(SystemExit, match="error:"):
            security_settings(_broker_args(*bad))


def test_dev_admin_password_is_made_once_and_private(tmp_path: Path) -> None:
    from odradek.cli.dev_cluster import dev_security

    first, path = dev_security(tmp_path)
    second, _ = dev_security(tmp_path)
    assert first.bootstrap_user == second.bootstrap_user and first.authorization
    assert path.stat().st_mode & 0o077 == 0


def test_client_login_from_options_and_environment(tmp_path: Path) -> None:
    from odradek.client.auth import ScramLogin

    assert ScramLogin.from_options(env={}) is None
    assert ScramLogin.from_options("u", "p", env={}) == ScramLogin("u", "p")
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    env = {"ODRADEK_USERNAME": "e", "ODRADEK_PASSWORD_FILE": str(pw)}
    assert ScramLogin.from_options(env=env) == ScramLogin("e", "from-file")
    assert ScramLogin.from_options(env={"ODRADEK_USERNAME": "e", "ODRADEK_PASSWORD": "x"}) \
        == ScramLogin("e", "x")
    assert "x" not in repr(ScramLogin("e", "x"))
    with pytest.raises(ValueError, match="no password"):
        ScramLogin.from_options(env={"ODRADEK_USERNAME": "e"})


# --- the guard ------------------------------------------------------------------------


class FakeContext:
    def __init__(self, metadata: tuple[tuple[str, str], ...] = (),
                 peer: str = "ipv6:[::1]:5555") -> None:
        self._metadata = metadata
        self._peer = peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def peer(self) -> str:
        return self._peer


def _guard(enabled: bool = True) -> Any:
    from odradek.broker.auth.guard import Guard

    state = SecurityState(acls=frozenset({allow("User:ANONYMOUS", "topic", "t", "read")}))
    return Guard(lambda: state, Sessions(lambda: {}), enabled=enabled,
                 super_users=frozenset({"User:root"}))


def test_guard_rules_unknown_methods_and_tokens() -> None:
    from odradek.broker.errors import BrokerError
    from odradek.broker.grpc.authorization import GRPC_RULES
    from odradek.broker.grpc.interceptor import check_call
    from odradek.security.hosts import peer_host
    from odradek.v1 import odradek_pb2 as pb

    guard = _guard()
    ctx: Any = FakeContext()
    fetch = GRPC_RULES["/odradek.v1.Broker/Fetch"]
    access = check_call(guard, fetch, pb.FetchRequest(topic="t"), ctx)
    assert (access.principal, access.host) == ("User:ANONYMOUS", "::1")
    with pytest.raises(BrokerError) as info:
        check_call(guard, fetch, pb.FetchRequest(topic="u"), ctx)
    assert info.value.reason == "TOPIC_AUTHORIZATION_FAILED"
    with pytest.raises(BrokerError) as info:  # a method nobody wrote a rule for
        check_call(guard, GRPC_RULES.get("/odradek.v1.Groups/Whatever"), None, ctx)
    assert info.value.reason == "CLUSTER_AUTHORIZATION_FAILED"
    with pytest.raises(BrokerError) as info:
        check_call(guard, fetch, pb.FetchRequest(topic="t"),
                     FakeContext((("authorization", "Bearer forged"),)))
    assert info.value.reason == "SESSION_EXPIRED"
    # Authorization off: anything goes, but a bad token is still refused.
    assert check_call(_guard(False), None, None, ctx).principal == "User:ANONYMOUS"
    with pytest.raises(BrokerError):
        check_call(_guard(False), None, None, FakeContext((("authorization", "Bearer x"),)))
    assert peer_host("ipv4:10.1.2.3:99") == "10.1.2.3" and peer_host("unix:/s") == "/s"


def test_logins_are_refused_beyond_the_session_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from odradek.broker.auth import sessions as sessions_module

    monkeypatch.setattr(sessions_module, "MAX_SESSIONS", 2)
    c = scram.make_credential("pw", 4096)
    users = {"a": UserCredential(scram.MECHANISM, c.salt, 4096, c.stored_key, c.server_key)}
    sessions = Sessions(lambda: users)
    tokens = [_login(sessions, "a", "pw") for _ in range(2)]
    with pytest.raises(AuthenticationFailed, match="too many"):
        _login(sessions, "a", "pw")
    assert all(sessions.lookup(t) is not None for t in tokens)


def test_exchanges_are_capped_per_peer_and_expire_oldest_first() -> None:
    from odradek.broker.auth.peer_limits import MAX_EXCHANGES_PER_PEER
    from odradek.broker.auth.sessions import EXCHANGE_TTL_S

    clock = Clock()
    sessions = Sessions(lambda: {}, clock=clock)

    def start(peer: str) -> str:
        return sessions.start(scram.ClientExchange("mallory", "x").first(), peer)[0]

    first = start("10.0.0.1")
    for _ in range(MAX_EXCHANGES_PER_PEER - 1):
        start("10.0.0.1")
    with pytest.raises(AuthenticationFailed, match="SCRAM exchanges open"):
        start("10.0.0.1")
    start("10.0.0.2")  # another address has room of its own
    for _ in range(MAX_EXCHANGES_PER_PEER + 1):
        start("")  # a front end that names no peer: the broker's cap only
    # A finished (here failed) exchange gives its slot back at once.
    with pytest.raises(AuthenticationFailed):
        sessions.finish(first, "c=biws,r=x,p=AAAA")
    start("10.0.0.1")
    assert sessions.exchanges_of("10.0.0.1") == MAX_EXCHANGES_PER_PEER
    # Expired ones too, the next time anyone starts.
    clock.now += EXCHANGE_TTL_S + 1
    start("10.0.0.3")
    assert sessions.exchanges_of("10.0.0.1") == 0 and sessions.exchanges_of("10.0.0.3") == 1


def test_guard_counts_only_unauthenticated_streams() -> None:
    from odradek.broker.auth.access import Access
    from odradek.broker.auth.authorizer import ANONYMOUS, Authorizer
    from odradek.broker.auth.peer_limits import MAX_ANONYMOUS_STREAMS_PER_PEER
    from odradek.broker.errors import BrokerError

    guard = _guard(True)
    anonymous = Access(ANONYMOUS, "10.0.0.1", Authorizer(()))
    releases = [guard.open_stream(anonymous) for _ in range(MAX_ANONYMOUS_STREAMS_PER_PEER)]
    with pytest.raises(BrokerError, match="unauthenticated streams open"):
        guard.open_stream(anonymous)
    guard.open_stream(Access("User:alice", "10.0.0.1", Authorizer(())))()
    releases.pop()()
    guard.open_stream(anonymous)
    assert guard.anonymous_streams.held("10.0.0.1") == MAX_ANONYMOUS_STREAMS_PER_PEER
