"""Interactive queries over gRPC (proto/odradek/v1/streams.proto): the server an instance
runs for the stores of its tasks, and the calls another instance makes to it. Plaintext
on the address given (for a pod network or loopback, as Kafka Streams'
application.server is), or TLS, mutual when the server requires client certificates."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import grpc

from odradek.security.tls import ClientTLS, ServerTLS, open_channel
from odradek.streams.stores import KeyValueStore
from odradek.v1 import streams_pb2 as pb
from odradek.v1 import streams_pb2_grpc as pb_grpc

log = logging.getLogger("odradek.streams")

QUERY_TIMEOUT_S = 5.0

# store name -> (partition -> that task's store) of the tasks running here now
LocalStores = Callable[[str], dict[int, KeyValueStore] | None]
# store name, key bytes -> the value from whichever instance runs the key's task; raises
# LookupError when none is known to
RouteGet = Callable[[str, bytes], Awaitable[bytes | None]]


class _Servicer(pb_grpc.StreamsQueryServicer):
    def __init__(self, application_id: str, local: LocalStores, route: RouteGet) -> None:
        self._app, self._local, self._route = application_id, local, route

    async def _stores(self, app: str, store: str, context: grpc.aio.ServicerContext[
            object, object]) -> dict[int, KeyValueStore]:
        found = self._local(store) if app == self._app else None
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"no store {store!r} in application {app!r} here")
        assert found is not None
        return found

    async def Get(self, request: pb.StoreGetRequest,  # noqa: N802
                  context: grpc.aio.ServicerContext[object, object]) -> pb.StoreGetResponse:
        stores = await self._stores(request.application_id, request.store, context)
        if request.partition < 0:
            try:
                found = await self._route(request.store, request.key)
            except LookupError as exc:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            return pb.StoreGetResponse(found=found is not None, value=found or b"")
        store = stores.get(request.partition)
        if store is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"partition {request.partition} of {request.store!r} is not "
                                "on this instance")
        assert store is not None
        value = store.get(request.key)
        return pb.StoreGetResponse(found=value is not None, value=value or b"")

    async def Range(self, request: pb.StoreRangeRequest,  # noqa: N802
                    context: grpc.aio.ServicerContext[object, object]
                    ) -> pb.StoreRangeResponse:
        stores = await self._stores(request.application_id, request.store, context)
        lo = request.lo if request.HasField("lo") else None
        hi = request.hi if request.HasField("hi") else None
        pairs = sorted(p for s in stores.values() for p in s.range(lo, hi))
        return pb.StoreRangeResponse(pairs=[pb.StoreKeyValue(key=k, value=v) for k, v in pairs])


class QueryServer:
    """tls: the certificate and key it presents and, with client_auth "required", the CA
    that must sign its callers' certificates (None: plaintext)."""

    def __init__(self, application_id: str, address: str, local: LocalStores,
                 route: RouteGet, tls: ServerTLS | None = None) -> None:
        self._server = grpc.aio.server()
        pb_grpc.add_StreamsQueryServicer_to_server(  # type: ignore[no-untyped-call]
            _Servicer(application_id, local, route), self._server)
        host = address.rsplit(":", 1)[0]
        port = (self._server.add_insecure_port(address) if tls is None
                else self._server.add_secure_port(address, tls.server_credentials()))
        if port == 0:
            raise OSError(f"cannot listen for interactive queries on {address}")
        self.endpoint = f"{host}:{port}"  # the port chosen when address asked for 0

    async def start(self) -> None:
        await self._server.start()
        log.info("serving interactive queries on %s", self.endpoint)

    async def stop(self) -> None:
        await self._server.stop(grace=1)


class QueryClient:
    """One channel per remote instance, opened on first use; tls: the CA that signs the
    instances' certificates and this side's certificate for mutual TLS (None: plaintext)."""

    def __init__(self, tls: ClientTLS | None = None) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._tls = tls

    def _stub(self, endpoint: str) -> pb_grpc.StreamsQueryStub:
        channel = self._channels.get(endpoint)
        if channel is None:
            channel = self._channels[endpoint] = open_channel(endpoint, self._tls)
        return pb_grpc.StreamsQueryStub(channel)  # type: ignore[no-untyped-call]

    async def get(self, endpoint: str, app: str, store: str, partition: int, key: bytes
                  ) -> bytes | None:
        reply = await self._stub(endpoint).Get(pb.StoreGetRequest(
            application_id=app, store=store, key=key, partition=partition),
            timeout=QUERY_TIMEOUT_S)
        return reply.value if reply.found else None

    async def range(self, endpoint: str, app: str, store: str, lo: bytes | None,
                    hi: bytes | None) -> list[tuple[bytes, bytes]]:
        request = pb.StoreRangeRequest(application_id=app, store=store)
        if lo is not None:
            request.lo = lo
        if hi is not None:
            request.hi = hi
        reply = await self._stub(endpoint).Range(request, timeout=QUERY_TIMEOUT_S)
        return [(p.key, p.value) for p in reply.pairs]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
