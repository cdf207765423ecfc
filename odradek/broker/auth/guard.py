"""Authorization of every RPC in one place: a grpc.aio server interceptor.

For each call it finds the caller (a session token in the `authorization: Bearer ...`
metadata, else the mTLS client certificate, else ANONYMOUS) and the caller's address,
then applies the method's rule from `rules.RULES`. The rule either checks the request
(with `Access.require`) before the servicer runs, or leaves finer checks to the servicer,
which reads the caller's `Access` through `current_access()` (Metadata and ListTopics show
only the topics the caller may describe, for instance). A method without a rule is for
super users only, so a new RPC is closed until someone writes its rule."""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from odradek.broker.auth.authorizer import ANONYMOUS, Authorizer
from odradek.broker.auth.sessions import Sessions
from odradek.broker.errors import BrokerError, Reason
from odradek.broker.grpc.status import to_status
from odradek.broker.metadata.security import CLUSTER_NAME, SecurityState
from odradek.security.hosts import peer_host
from odradek.security.principal import PrincipalRule, principal_of_certificate

CERT_CACHE_LIMIT = 4096

DENIED_REASONS = {"topic": Reason.TOPIC_AUTHORIZATION_FAILED,
                  "group": Reason.GROUP_AUTHORIZATION_FAILED,
                  "cluster": Reason.CLUSTER_AUTHORIZATION_FAILED}


def permission_denied(principal: str, resource_type: str, name: str,
                      operation: str) -> BrokerError:
    what = "the cluster" if resource_type == "cluster" else f"{resource_type} {name!r}"
    return BrokerError(
        DENIED_REASONS[resource_type], f"{principal} is not allowed to {operation} on {what}",
        {"principal": principal, "resource_type": resource_type, "resource_name": name,
         "operation": operation})


@dataclass(frozen=True)
class Access:
    """Who is calling, from where, and the authorizer that decides for them."""

    principal: str
    host: str
    authorizer: Authorizer

    def allowed(self, resource_type: str, name: str, operation: str) -> bool:
        return self.authorizer.allowed(self.principal, self.host, resource_type, name,
                                       operation)

    def require(self, resource_type: str, name: str, operation: str) -> None:
        if not self.allowed(resource_type, name, operation):
            raise permission_denied(self.principal, resource_type, name, operation)

    def require_any(self, *checks: tuple[str, str, str]) -> None:
        """One of the (resource type, name, operation) must be allowed; the denial names
        the first."""
        if not any(self.allowed(*check) for check in checks):
            raise permission_denied(self.principal, *checks[0])

    def require_cluster(self, operation: str) -> None:
        self.require("cluster", CLUSTER_NAME, operation)

    def require_super_user(self) -> None:
        if self.authorizer.enabled and not self.authorizer.is_super_user(self.principal):
            raise BrokerError(Reason.CLUSTER_AUTHORIZATION_FAILED,
                f"{self.principal} may not call broker-internal services",
                {"principal": self.principal})

    def may_describe_topic(self, name: str) -> bool:
        return self.allowed("topic", name, "describe")


_OPEN = Access(ANONYMOUS, "", Authorizer((), enabled=False))
_current: contextvars.ContextVar[Access] = contextvars.ContextVar("odradek_access",
                                                                  default=_OPEN)


def current_access() -> Access:
    """The caller of the RPC being served (everything allowed outside the interceptor,
    e.g. in-process tests that call servicers directly)."""
    return _current.get()


# A rule runs before the servicer with the decoded request. PUBLIC methods are not
# intercepted at all; INTER_BROKER ones need a super user (which the brokers are).
Rule = Callable[[Any, Access], None]
PUBLIC = "public"
INTER_BROKER = "inter-broker"


class Guard:
    def __init__(self, security: Callable[[], SecurityState], sessions: Sessions,
                 rules: dict[str, Rule | str], *, enabled: bool,
                 super_users: frozenset[str] = frozenset(),
                 principal_rules: tuple[PrincipalRule, ...] = (),
                 refused: Callable[[str, BrokerError], None] = lambda method, error: None,
                 ) -> None:
        self._security = security
        self.sessions = sessions
        self.rules = rules
        self.enabled = enabled
        self.super_users = super_users
        self.principal_rules = principal_rules
        # Told of every refused call (method name, error): the metrics count them.
        self.refused = refused
        self._state: SecurityState | None = None
        self._authorizer = Authorizer((), super_users, enabled)
        self._cert_principals: dict[bytes, str] = {}

    def authorizer(self) -> Authorizer:
        state = self._security()
        if state is not self._state:
            self._authorizer = Authorizer(state.acls, self.super_users, self.enabled)
            self._state = state
        return self._authorizer

    def _certificate_principal(self, context: grpc.aio.ServicerContext) -> str:
        certs = context.auth_context().get("x509_pem_cert")
        if not certs:
            return ANONYMOUS
        pem = certs[0]
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

    def identify(self, context: grpc.aio.ServicerContext) -> Access:
        """The caller; UNAUTHENTICATED for a token that is not (or no longer) good, so the
        client knows to authenticate again."""
        token = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str) and value.startswith(
                    "Bearer "):
                token = value[len("Bearer "):].strip()
        if token is not None:
            session = self.sessions.lookup(token)
            if session is None:
                raise BrokerError(Reason.SESSION_EXPIRED,
                                  "the session token is unknown or expired on this broker; "
                                  "authenticate again")
            principal = session.principal
        elif self.enabled:
            principal = self._certificate_principal(context)
        else:
            principal = ANONYMOUS
        return Access(principal, peer_host(context.peer() or ""), self.authorizer())

    def _check(self, rule: Rule | str | None, request: Any,
               context: grpc.aio.ServicerContext) -> Access:
        access = self.identify(context)
        if not self.enabled:
            return access
        if rule is None or rule == INTER_BROKER:
            access.require_super_user()
        elif callable(rule):
            rule(request, access)
        return access

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        return _Interceptor(self)


def _guarded(guard: Guard, method: str, rule: Rule | str | None, inner: Callable[..., Any],
             unary_request: bool) -> Callable[..., Any]:
    """`inner` behind the rule, in the same shape (an async generator stays one: grpc
    tells streaming handlers that yield from those that write to the context)."""
    name = method.rpartition("/")[2]

    async def check(request: Any, context: grpc.aio.ServicerContext) -> None:
        try:
            _current.set(guard._check(rule, request if unary_request else None, context))
        except BrokerError as exc:
            guard.refused(name, exc)
            await context.abort_with_status(to_status(exc))

    if inspect.isasyncgenfunction(inner):
        async def generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await check(request, context)
            stream = inner(request, context)
            try:
                async for item in stream:
                    # A stream lives long: each answer is checked again, so a removed ACL,
                    # a deleted user or an expired session ends it (decisions are cached).
                    await check(request, context)
                    yield item
            finally:
                await stream.aclose()

        return generator

    async def coroutine(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await check(request, context)
        return await inner(request, context)

    return coroutine


def _wrap(guard: Guard, method: str, rule: Rule | str | None,
          handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    de, ser = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _guarded(guard, method, rule, handler.unary_unary, True), de, ser)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _guarded(guard, method, rule, handler.unary_stream, True), de, ser)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _guarded(guard, method, rule, handler.stream_unary, False), de, ser)
    return grpc.stream_stream_rpc_method_handler(
        _guarded(guard, method, rule, handler.stream_stream, False), de, ser)


class _Interceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        rule = self.guard.rules.get(method)
        if handler is None or rule == PUBLIC or method.startswith(
                ("/grpc.health.", "/grpc.reflection.")):
            return handler
        return _wrap(self.guard, method, rule, handler)
