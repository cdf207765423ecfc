"""The guard in front of every gRPC method: the caller from the call's metadata (a
``authorization: Bearer`` session token), its mutual-TLS certificate and its peer
address; the method's rule from grpc/authorization.py; a refusal as the call's status."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc

from odradek.broker.auth.access import PUBLIC, Access, Rule, set_current_access
from odradek.broker.auth.guard import Guard
from odradek.broker.errors import BrokerError
from odradek.broker.grpc.status import to_status
from odradek.security.hosts import peer_host

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


def _guarded(guard: Guard, refused: Refused, method: str, rule: Rule | str | None,
             inner: Callable[..., Any], unary_request: bool) -> Callable[..., Any]:
    """`inner` behind the rule, in the same shape (an async generator stays one: grpc
    tells streaming handlers that yield from those that write to the context)."""
    name = method.rpartition("/")[2]

    async def check(request: Any, context: grpc.aio.ServicerContext) -> None:
        try:
            set_current_access(check_call(guard, rule, request if unary_request else None,
                                          context))
        except BrokerError as exc:
            refused(name, exc)
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


def _wrap(guard: Guard, refused: Refused, method: str, rule: Rule | str | None,
          handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    de, ser = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _guarded(guard, refused, method, rule, handler.unary_unary, True), de, ser)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _guarded(guard, refused, method, rule, handler.unary_stream, True), de, ser)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _guarded(guard, refused, method, rule, handler.stream_unary, False), de, ser)
    return grpc.stream_stream_rpc_method_handler(
        _guarded(guard, refused, method, rule, handler.stream_stream, False), de, ser)


class GuardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, guard: Guard, rules: Mapping[str, Rule | str],
                 refused: Refused = lambda method, error: None) -> None:
        self.guard = guard
        self.rules = rules
        # Told of every refused call (method name, error): the metrics count them.
        self.refused = refused

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        rule = self.rules.get(method)
        if handler is None or rule == PUBLIC or method.startswith(
                ("/grpc.health.", "/grpc.reflection.")):
            return handler
        return _wrap(self.guard, self.refused, method, rule, handler)
