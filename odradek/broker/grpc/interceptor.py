"""The guard in front of every gRPC method: the caller from the call's metadata (a
``authorization: Bearer`` session token), its mutual-TLS certificate and its peer
address; the method's rule from grpc/authorization.py; a refusal as the call's status."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc

from odradek.broker.auth.access import PUBLIC, Access, Rule, set_current_access
from odradek.broker.auth.guard import Guard
from odradek.broker.errors import BrokerError
from odradek.broker.grpc.limits import (
    SERVER_RECEIVE_LIMIT,
    Malformed,
    Oversized,
    limited,
    request_limit,
)
from odradek.broker.grpc.status import to_status
from odradek.broker.logs import clip
from odradek.security.hosts import peer_host

log = logging.getLogger("odradek.broker")

Refused = Callable[[str, BrokerError], None]


def identify(guard: Guard, context: grpc.aio.ServicerContext) -> Access:
    token = None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            token = value[len("Bearer "):].strip()
    certs = context.auth_context().get("x509_pem_cert") if guard.enabled else None
    return guard.identify(token, certs[0] if certs else None, peer_host(context.peer() or ""))


def check_call(guard: Guard, rule: Rule | str | None, request: Any,
               context: grpc.aio.ServicerContext) -> Access:
    access = identify(guard, context)
    guard.check(rule, request, access)
    return access


# Run before a call; what it returns (if anything) is called once the call ends.
Check = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Callable[[], None] | None]]
Requests = Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], AsyncIterator[Any]]


def _shaped(inner: Callable[..., Any], before: Check, unary_request: bool,
            each_answer: bool, requests: Requests | None) -> Callable[..., Any]:
    """`inner` with `before` run ahead of it (given the request, or None for a request
    stream, which `requests` may filter), in the same shape: an async generator stays one
    (grpc tells streaming handlers that yield from those that write to the context)."""

    def arguments(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return request if unary_request or requests is None else requests(request, context)

    if inspect.isasyncgenfunction(inner):
        async def generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            ended = await before(request if unary_request else None, context)
            stream = inner(arguments(request, context), context)
            try:
                async for item in stream:
                    if each_answer:
                        await before(request if unary_request else None, context)
                    yield item
            finally:
                await stream.aclose()
                if ended is not None:
                    ended()

        return generator

    async def coroutine(request: Any, context: grpc.aio.ServicerContext) -> Any:
        ended = await before(request if unary_request else None, context)
        try:
            return await inner(arguments(request, context), context)
        finally:
            if ended is not None:
                ended()

    return coroutine


def wrap_handler(handler: grpc.RpcMethodHandler, before: Check, *, each_answer: bool = False,
                 deserializer: Callable[[bytes], Any] | None = None,
                 requests: Requests | None = None) -> grpc.RpcMethodHandler:
    """The handler with `before` ahead of its behaviour (again before each answer of a
    response stream with `each_answer`), its request deserializer replaced if given."""
    de, ser = deserializer or handler.request_deserializer, handler.response_serializer
    for kind, unary_request, make in (
            ("unary_unary", True, grpc.unary_unary_rpc_method_handler),
            ("unary_stream", True, grpc.unary_stream_rpc_method_handler),
            ("stream_unary", False, grpc.stream_unary_rpc_method_handler),
            ("stream_stream", False, grpc.stream_stream_rpc_method_handler)):
        inner = getattr(handler, kind)
        if inner is not None:
            return make(_shaped(inner, before, unary_request, each_answer, requests), de, ser)
    raise ValueError(f"a method handler without a behaviour: {handler!r}")


def _guarded(guard: Guard, refused: Refused, method: str, rule: Rule | str | None,
             handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    name = method.rpartition("/")[2]
    # The handler is made per call: a stream's first check (not its answers') counts it
    # against the caller.
    uncounted = [handler.unary_unary is None]

    async def check(request: Any, context: grpc.aio.ServicerContext) -> Callable[[], None] | None:
        try:
            access = check_call(guard, rule, request, context)
            set_current_access(access)
            if uncounted[0]:
                uncounted[0] = False
                return guard.open_stream(access)
        except BrokerError as exc:
            refused(name, exc)
            await context.abort_with_status(to_status(exc))
        return None

    # A stream lives long: each answer is checked again, so a removed ACL, a deleted
    # user or an expired session ends it (decisions are cached).
    return wrap_handler(handler, check, each_answer=True)


class _HandlerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps each method's handler (`wrap`: the handler as it is, or another)."""

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        return None if handler is None else self.wrap(handler_call_details.method, handler)


class GuardInterceptor(_HandlerInterceptor):
    def __init__(self, guard: Guard, rules: Mapping[str, Rule | str],
                 refused: Refused = lambda method, error: None) -> None:
        self.guard = guard
        self.rules = rules
        # Told of every refused call (method name, error): the metrics count them.
        self.refused = refused

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        rule = self.rules.get(method)
        if rule == PUBLIC or method.startswith(("/grpc.health.", "/grpc.reflection.")):
            return handler
        return _guarded(self.guard, self.refused, method, rule, handler)


class RequestLimitInterceptor(_HandlerInterceptor):
    """Refuses a request over its method's limit (grpc/limits.py) before it is parsed,
    authenticated or served. Outermost, so that no other check reads such a request."""

    def __init__(self, refused: Refused = lambda method, error: None,
                 limits: Callable[[str], int] = request_limit) -> None:
        self.refused = refused
        self.limits = limits

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        limit = self.limits(method)
        # gRPC itself refuses what is over its limit (without buffering it).
        if limit >= SERVER_RECEIVE_LIMIT:
            return handler
        refused = self.refused
        name = method.rpartition("/")[2]

        async def refuse(bad: Oversized | Malformed, context: grpc.aio.ServicerContext) -> None:
            error = bad.error()
            refused(name, error)
            if isinstance(bad, Oversized):
                log.info("refused a %s request of %d bytes from %s (limit %d)", name,
                         bad.size, clip(context.peer() or ""), bad.limit)
            await context.abort_with_status(to_status(error))

        async def check(request: Any, context: grpc.aio.ServicerContext) -> None:
            if isinstance(request, Oversized | Malformed):
                await refuse(request, context)
            return None

        async def checked(requests: AsyncIterator[Any],
                          context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for request in requests:
                if isinstance(request, Oversized | Malformed):
                    await refuse(request, context)
                yield request

        return wrap_handler(handler, check,
                            deserializer=limited(method, handler.request_deserializer, limit),
                            requests=checked)
