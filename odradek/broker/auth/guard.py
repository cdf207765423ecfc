"""Authentication and the check of every request in one place, for any front end.

For each request the front end gives what it knows of the caller (a session token, the
mutual-TLS client certificate, the peer's address); the guard finds the principal (the
token's session, else the certificate, else ANONYMOUS) and applies the request's rule.
The rule either checks the request before it is served, or leaves finer checks to the
servicer, which reads the caller's Access through ``current_access()``. A request with
no rule is for super users only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from odradek.broker.auth.access import INTER_BROKER, Access, Rule
from odradek.broker.auth.authorizer import ANONYMOUS, Authorizer
from odradek.broker.auth.peer_limits import (
    MAX_ANONYMOUS_STREAMS_PER_PEER,
    MAX_OPEN_STREAMS_PER_PEER,
    PeerCounts,
)
from odradek.broker.auth.sessions import Sessions
from odradek.broker.errors import BrokerError, Reason
from odradek.broker.metadata.security import SecurityState
from odradek.security.principal import PrincipalRule, principal_of_certificate

CERT_CACHE_LIMIT = 4096


class Guard:
    def __init__(self, security: Callable[[], SecurityState], sessions: Sessions, *,
                 enabled: bool, super_users: frozenset[str] = frozenset(),
                 principal_rules: tuple[PrincipalRule, ...] = (),
                 broker_principals: frozenset[str] = frozenset()) -> None:
        self._security = security
        # Who the brokers are (their certificates' principals): the only callers of the
        # brokers' own services. Empty (no certificates): super users, as before.
        self.broker_principals = broker_principals
        self.sessions = sessions
        self.enabled = enabled
        self.super_users = super_users
        self.principal_rules = principal_rules
        self._state: SecurityState | None = None
        self._authorizer = Authorizer((), super_users, enabled)
        self._cert_principals: dict[bytes, str] = {}
        self.anonymous_streams = PeerCounts(
            MAX_ANONYMOUS_STREAMS_PER_PEER if enabled else MAX_OPEN_STREAMS_PER_PEER,
            "unauthenticated streams")

    def authorizer(self) -> Authorizer:
        state = self._security()
        if state is not self._state:
            self._authorizer = Authorizer(state.acls, self.super_users, self.enabled)
            self._state = state
        return self._authorizer

    def _certificate_principal(self, pem: bytes | None) -> str:
        if not pem:
            return ANONYMOUS
        principal = self._cert_principals.get(pem)
        if principal is None:
            try:
                principal = principal_of_certificate(pem, self.principal_rules) or ANONYMOUS
            except ValueError:
                principal = ANONYMOUS
            if len(self._cert_principals) >= CERT_CACHE_LIMIT:
                self._cert_principals.clear()
            self._cert_principals[pem] = principal
        return principal

    def identify(self, token: str | None, certificate: bytes | None, host: str) -> Access:
        """The caller; SESSION_EXPIRED for a token that is not (or no longer) good, so the
        client knows to authenticate again."""
        if token is not None:
            session = self.sessions.lookup(token)
            if session is None:
                raise BrokerError(Reason.SESSION_EXPIRED,
                                  "the session token is unknown or expired on this broker; "
                                  "authenticate again")
            principal = session.principal
            if principal in self.broker_principals:
                # A broker is known by its certificate only, never by a password.
                raise BrokerError(Reason.AUTHENTICATION_FAILED,
                                  f"{principal} is a broker principal: it cannot log in "
                                  "with SCRAM")
        elif self.enabled:
            principal = self._certificate_principal(certificate)
        else:
            principal = ANONYMOUS
        return Access(principal, host, self.authorizer())

    def check(self, rule: Rule | str | None, request: Any, access: Access) -> None:
        if not self.enabled:
            return
        if rule == INTER_BROKER and self.broker_principals:
            if access.principal not in self.broker_principals:
                raise BrokerError(Reason.CLUSTER_AUTHORIZATION_FAILED,
                                  f"{access.principal} may not call broker-internal services: "
                                  "only the brokers (--broker-principal) may",
                                  {"principal": access.principal})
        elif rule is None or rule == INTER_BROKER:
            access.require_super_user()
        elif callable(rule):
            rule(request, access)

    def open_stream(self, access: Access) -> Callable[[], None]:
        """Counts a stream an unauthenticated caller opens against its address while it
        is open (THROTTLED over the cap): such a stream holds broker memory and costs the
        caller nothing. The returned function is called when the stream ends."""
        if access.principal != ANONYMOUS:
            return _nothing
        streams, host = self.anonymous_streams, access.host
        streams.acquire(host)
        return lambda: streams.release(host)


def _nothing() -> None:
    """What releasing an uncounted (authenticated) stream does."""
