"""Broker-local SCRAM exchanges and the session tokens they yield.

Nothing here is replicated: a token is good on the broker that issued it only (a client
authenticates once per broker, as a Kafka client does per connection). A token stays good
until it expires or the user's credential changes (deleted user, new password)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from odradek.broker import clock as broker_clock
from odradek.broker.auth.peer_limits import MAX_EXCHANGES_PER_PEER, PeerCounts
from odradek.broker.errors import BrokerError
from odradek.broker.metadata.security import UserCredential
from odradek.security import scram

EXCHANGE_TTL_S = 30.0
MAX_EXCHANGES = 10_000
MAX_SESSIONS = 100_000
DEFAULT_SESSION_LIFETIME_S = 3600.0


class AuthenticationFailed(Exception):
    """A failed exchange. The message is for the broker's log; clients get one message
    for every failure, so they cannot tell which part was wrong."""


@dataclass
class _Exchange:
    name: str
    user: str | None  # None: the user does not exist (a decoy exchange)
    server: scram.ServerExchange
    started: float
    peer: str = ""


@dataclass(frozen=True)
class Session:
    user: str
    stored_key: bytes
    expires_at: float

    @property
    def principal(self) -> str:
        return f"User:{self.user}"


class Sessions:
    def __init__(self, users: Callable[[], Mapping[str, UserCredential]],
                 lifetime_s: float = DEFAULT_SESSION_LIFETIME_S,
                 clock: Callable[[], float] = broker_clock.monotonic,
                 cluster_secret: Callable[[], bytes] = lambda: b"") -> None:
        self._users = users
        self.lifetime_s = lifetime_s
        self._clock = clock
        # Both in the order they expire (one TTL for exchanges, one lifetime for the
        # sessions of a broker): expiry looks at the oldest entries only, never at all.
        self._exchanges: dict[str, _Exchange] = {}
        self._sessions: dict[str, Session] = {}
        self._exchange_peers = PeerCounts(MAX_EXCHANGES_PER_PEER, "SCRAM exchanges")
        # Decoy salts for unknown users: stable per name, so asking twice does not reveal
        # that the salt is made up; from the cluster's secret, so that asking another
        # broker or after a restart does not either (this broker's own random secret
        # until the cluster has one).
        self._cluster_secret = cluster_secret
        self._local_secret = secrets.token_bytes(32)

    def _decoy(self, name: str) -> scram.ScramCredential:
        key = self._cluster_secret() or self._local_secret
        salt = hmac.new(key, b"decoy-salt:" + name.encode(), hashlib.sha256).digest()
        return scram.ScramCredential(salt, scram.DEFAULT_ITERATIONS,
                                     secrets.token_bytes(scram.KEY_BYTES),
                                     secrets.token_bytes(scram.KEY_BYTES))

    def _expire(self) -> None:
        now = self._clock()
        exchanges, sessions = self._exchanges, self._sessions
        while exchanges:
            key = next(iter(exchanges))
            if now - exchanges[key].started <= EXCHANGE_TTL_S:
                break
            gone = exchanges.pop(key)
            if gone.peer:
                self._exchange_peers.release(gone.peer)
        while sessions:
            key = next(iter(sessions))
            if sessions[key].expires_at > now:
                break
            del sessions[key]

    def exchanges_of(self, peer: str) -> int:
        return self._exchange_peers.held(peer)

    def start(self, client_first: str, peer: str = "") -> tuple[str, str]:
        """(exchange id, server-first-message). ScramError for a malformed message;
        AuthenticationFailed when the broker, or `peer`, has too many in progress."""
        name, nonce, bare = scram.parse_client_first(client_first)
        self._expire()
        if len(self._exchanges) >= MAX_EXCHANGES or len(self._sessions) >= MAX_SESSIONS:
            # Memory stays bounded whatever clients do; live sessions keep working.
            raise AuthenticationFailed("too many authentications or sessions on this broker; "
                                       "retry shortly")
        # A front end that does not say who is calling ("") gets the broker's cap only.
        try:
            if peer:
                self._exchange_peers.acquire(peer)
        except BrokerError as exc:
            raise AuthenticationFailed(exc.message) from None
        known = self._users().get(name)
        if known is not None and known.mechanism == scram.MECHANISM:
            credential = scram.ScramCredential(known.salt, known.iterations, known.stored_key,
                                               known.server_key)
            user: str | None = name
        else:
            credential, user = self._decoy(name), None
        server = scram.ServerExchange(credential, nonce, bare)
        first = server.first()
        exchange_id = secrets.token_urlsafe(18)
        self._exchanges[exchange_id] = _Exchange(name, user, server, self._clock(), peer)
        return exchange_id, first

    def abandon(self, exchange_id: str) -> None:
        """The client left between its two messages: its peer's slot is free at once
        instead of when the exchange would expire."""
        exchange = self._exchanges.pop(exchange_id, None)
        if exchange is not None and exchange.peer:
            self._exchange_peers.release(exchange.peer)

    def finish(self, exchange_id: str, client_final: str) -> tuple[str, str, Session]:
        """(server-final-message, token, session); AuthenticationFailed otherwise."""
        exchange = self._exchanges.pop(exchange_id, None)
        if exchange is not None and exchange.peer:
            self._exchange_peers.release(exchange.peer)
        if exchange is None or self._clock() - exchange.started > EXCHANGE_TTL_S:
            raise AuthenticationFailed("unknown or expired exchange")
        try:
            server_final = exchange.server.final(client_final)
        except scram.ScramError as exc:
            what = "unknown user" if exchange.user is None else str(exc)
            raise AuthenticationFailed(f"user {exchange.name!r}: {what}") from None
        if exchange.user is None:  # cannot happen with a random decoy key; be sure anyway
            raise AuthenticationFailed(f"user {exchange.name!r}: unknown user")
        token = secrets.token_urlsafe(32)
        session = Session(exchange.user, exchange.server.credential.stored_key,
                          self._clock() + self.lifetime_s)
        self._sessions[token] = session
        return server_final, token, session

    def lookup(self, token: str) -> Session | None:
        """The live session of a token, or None (unknown, expired, or the user was deleted
        or given a new password since)."""
        session = self._sessions.get(token)
        if session is None:
            return None
        current = self._users().get(session.user)
        if (session.expires_at <= self._clock() or current is None
                or not hmac.compare_digest(current.stored_key, session.stored_key)):
            self._sessions.pop(token, None)
            return None
        return session
