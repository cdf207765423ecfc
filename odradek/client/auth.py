"""SCRAM-SHA-512 login for the client: one exchange per channel (= per broker), then the
session token on every call as `authorization: Bearer <token>`.

The token is broker-local and expires. It is renewed before it runs out (at 80% of its
lifetime), and a unary call that the broker refuses with SESSION_EXPIRED (the broker
restarted, the user's password changed) authenticates again and is retried once."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from odradek.client.errors import AuthenticationFailedError, from_rpc_error
from odradek.security import scram
from odradek.v1 import security_pb2 as spb
from odradek.v1 import security_pb2_grpc as spb_grpc

ENV_USERNAME = "ODRADEK_USERNAME"
ENV_PASSWORD = "ODRADEK_PASSWORD"
ENV_PASSWORD_FILE = "ODRADEK_PASSWORD_FILE"
RENEW_AT = 0.8
EXCHANGE_TIMEOUT_S = 30.0
_SCRAM_METHODS = ("/odradek.v1.Security/ScramStart", "/odradek.v1.Security/ScramFinish")


@dataclass(frozen=True)
class ScramLogin:
    username: str
    password: str

    def __repr__(self) -> str:  # never show the password
        return f"ScramLogin(username={self.username!r})"

    @classmethod
    def from_options(cls, username: str | None = None, password: str | None = None,
                     env: Mapping[str, str] | None = None) -> ScramLogin | None:
        """Credentials from the options, else ODRADEK_USERNAME with ODRADEK_PASSWORD or
        ODRADEK_PASSWORD_FILE (its first line). None: no SCRAM login."""
        env = os.environ if env is None else env
        username = username or env.get(ENV_USERNAME) or None
        if username is None:
            if password is not None:
                raise ValueError("a SCRAM password needs a user name")
            return None
        if password is None:
            password = env.get(ENV_PASSWORD) or None
        if password is None and env.get(ENV_PASSWORD_FILE):
            password = read_password_file(env[ENV_PASSWORD_FILE])
        if password is None:
            raise ValueError(f"user {username!r} has no password (set {ENV_PASSWORD} or "
                             f"{ENV_PASSWORD_FILE})")
        return cls(username, password)


def read_password_file(path: str | os.PathLike[str]) -> str:
    text = Path(path).read_text(encoding="utf-8")
    return text.splitlines()[0] if text else ""


async def authenticate(channel: grpc.aio.Channel, login: ScramLogin,
                       timeout: float = EXCHANGE_TIMEOUT_S) -> spb.ScramFinishResponse:
    """Runs the SCRAM exchange on the channel; checks the server's signature. Raises
    grpc.RpcError from the broker, or scram.ScramError for a server that is not who it
    claims (its signature does not verify)."""
    stub = spb_grpc.SecurityStub(channel)  # type: ignore[no-untyped-call]
    exchange = scram.ClientExchange(login.username, login.password)
    started = await stub.ScramStart(spb.ScramStartRequest(
        mechanism=scram.MECHANISM, client_first_message=exchange.first()), timeout=timeout)
    final = exchange.final(started.server_first_message)
    finished: spb.ScramFinishResponse = await stub.ScramFinish(spb.ScramFinishRequest(
        exchange_id=started.exchange_id, client_final_message=final), timeout=timeout)
    exchange.verify_server(finished.server_final_message)
    return finished


class ChannelSession:
    """The session of one channel: a token and when to renew it."""

    def __init__(self, login: ScramLogin, clock: Callable[[], float] = time.monotonic) -> None:
        self.login = login
        self.channel: grpc.aio.Channel | None = None
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()
        self._clock = clock

    async def token(self, refresh: bool = False, stale: str | None = None) -> str:
        async with self._lock:
            # Another call may have renewed it while this one waited for the lock.
            if refresh and self._token is not None and self._token != stale:
                return self._token
            if refresh or self._token is None or self._clock() >= self._renew_at:
                assert self.channel is not None
                try:
                    reply = await authenticate(self.channel, self.login)
                except scram.ScramError as exc:
                    raise AuthenticationFailedError(
                        f"SCRAM exchange with the broker failed: {exc}") from None
                self._token = reply.session_token
                self._renew_at = self._clock() + reply.expires_in_ms / 1000 * RENEW_AT
            return self._token

    async def details(self, details: grpc.aio.ClientCallDetails, refresh: bool = False,
                      stale: str | None = None) -> tuple[grpc.aio.ClientCallDetails, str]:
        token = await self.token(refresh, stale)
        metadata = grpc.aio.Metadata(*[(k, v) for k, v in (details.metadata or ())
                                       if k != "authorization"])
        metadata.add("authorization", f"Bearer {token}")
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata,
                                          details.credentials, details.wait_for_ready), token


def _expired(exc: grpc.aio.AioRpcError) -> bool:
    if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
        return False
    return from_rpc_error(exc).reason == "SESSION_EXPIRED"


def _is_scram(details: grpc.aio.ClientCallDetails) -> bool:
    method = details.method.decode() if isinstance(details.method, bytes) else details.method
    return method in _SCRAM_METHODS


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, session: ChannelSession) -> None:
        self.session = session

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if _is_scram(details):
            return await continuation(details, request)
        with_token, token = await self.session.details(details)
        call = await continuation(with_token, request)
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            if not _expired(exc):
                raise
        with_token, _ = await self.session.details(details, refresh=True, stale=token)
        return await (await continuation(with_token, request))


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, session: ChannelSession) -> None:
        self.session = session

    async def intercept_unary_stream(self, continuation: Any, details: Any,
                                     request: Any) -> Any:
        with_token, _ = await self.session.details(details)
        return await continuation(with_token, request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, session: ChannelSession) -> None:
        self.session = session

    async def intercept_stream_unary(self, continuation: Any, details: Any,
                                     request_iterator: Any) -> Any:
        with_token, _ = await self.session.details(details)
        return await continuation(with_token, request_iterator)


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, session: ChannelSession) -> None:
        self.session = session

    async def intercept_stream_stream(self, continuation: Any, details: Any,
                                      request_iterator: Any) -> Any:
        with_token, _ = await self.session.details(details)
        return await continuation(with_token, request_iterator)


def interceptors(session: ChannelSession) -> list[Any]:
    """The channel's interceptors (grpc.aio files each object under one kind only)."""
    return [_UnaryUnary(session), _UnaryStream(session), _StreamUnary(session),
            _StreamStream(session)]
