"""The gRPC listener: one server with the client services, the brokers' own (Raft,
controller), health and reflection, and the guard's interceptor in front of all."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from odradek.broker.auth.guard import Guard
from odradek.broker.cluster import ClusterNode
from odradek.broker.errors import BrokerError, ListenError
from odradek.broker.groups.coordinator import GroupCoordinator
from odradek.broker.grpc.authorization import GRPC_RULES
from odradek.broker.grpc.broker_service import AdminService, BrokerService, ControllerService
from odradek.broker.grpc.groups_service import GroupsService
from odradek.broker.grpc.interceptor import GuardInterceptor, RequestLimitInterceptor
from odradek.broker.grpc.limits import SERVER_RECEIVE_LIMIT
from odradek.broker.grpc.security_service import SecurityService
from odradek.broker.grpc.status import status_code
from odradek.broker.listeners import Addresses
from odradek.broker.metrics.broker import BrokerMetrics
from odradek.broker.peers.raft_service import add_raft_service
from odradek.broker.peers.raft_transport import SERVER_OPTIONS, RaftTransport
from odradek.broker.topic_admin import TopicAdmin
from odradek.security.hosts import host_port
from odradek.security.tls import ServerTLS
from odradek.v1 import (
    cluster_pb2_grpc,
    groups_pb2,
    groups_pb2_grpc,
    security_pb2,
    security_pb2_grpc,
)
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc


class GrpcListener:
    """Bound first (the port may be 0: the broker learns its own address from it), then
    given the services once the broker core exists, then started."""

    def __init__(self, guard: Callable[[], Guard | None], metrics: BrokerMetrics) -> None:
        def refused(method: str, error: BrokerError) -> None:
            metrics.observe_rpc(method, 0.0, status_code(error).name, error.reason)

        # The guard needs the cluster's image, made after the port is bound: the
        # interceptor reaches it late.
        # Request limits first: no other check reads a request over its method's limit.
        options = [*(o for o in SERVER_OPTIONS if o[0] != "grpc.max_receive_message_length"),
                   ("grpc.so_reuseport", 0),
                   ("grpc.max_receive_message_length", SERVER_RECEIVE_LIMIT)]
        self.server = grpc.aio.server(options=options, interceptors=[
            RequestLimitInterceptor(refused), _LateInterceptor(guard, refused)])
        self.health = HealthServicer()
        self._health_names: list[str] = []

    def bind(self, host: str, port: int, tls: ServerTLS | None) -> int:
        address = host_port(host, port)
        try:
            if tls is not None:
                bound = self.server.add_secure_port(address, tls.server_credentials())
            else:
                bound = self.server.add_insecure_port(address)
        except RuntimeError:  # grpc: "Failed to bind to address ..."
            bound = 0
        if bound == 0:
            raise ListenError(f"cannot listen on {address}: the port is in use, or the "
                              "address is not one of this machine's (--host, --port)")
        return int(bound)

    def add_services(self, admin: TopicAdmin, cluster: ClusterNode, guard: Guard,
                     groups: GroupCoordinator, transport: RaftTransport,
                     metrics: BrokerMetrics) -> None:
        """The broker's own listener: the client services and the brokers' own."""
        server = self.server
        cluster_pb2_grpc.add_ControllerServicer_to_server(ControllerService(admin, metrics), server)  # type: ignore[no-untyped-call]
        add_raft_service(transport.servicer(), server)
        self.add_client_services(admin, cluster, guard, groups, metrics)

    def add_client_services(self, admin: TopicAdmin, cluster: ClusterNode, guard: Guard,
                            groups: GroupCoordinator, metrics: BrokerMetrics,
                            addresses: Addresses | None = None) -> None:
        """What clients call; a further listener serves only these (`addresses`: how it
        names brokers)."""
        server, m = self.server, metrics
        pb_grpc.add_BrokerServicer_to_server(BrokerService(admin, m, addresses), server)  # type: ignore[no-untyped-call]
        pb_grpc.add_AdminServicer_to_server(AdminService(admin, m, addresses), server)  # type: ignore[no-untyped-call]
        security_pb2_grpc.add_SecurityServicer_to_server(  # type: ignore[no-untyped-call]
            SecurityService(cluster, guard.sessions, m, guard.broker_principals), server)
        groups_pb2_grpc.add_GroupsServicer_to_server(GroupsService(groups, m, addresses), server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = [pb.DESCRIPTOR.services_by_name[n].full_name for n in ("Broker", "Admin")]
        names.append(groups_pb2.DESCRIPTOR.services_by_name["Groups"].full_name)
        names.append(security_pb2.DESCRIPTOR.services_by_name["Security"].full_name)
        # The client services get a health status of their own (SERVING once registered).
        self._health_names = names[:3]
        names += [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                  reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, server)

    async def start(self) -> None:
        await self.server.start()

    async def set_serving(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for service in ("", *self._health_names):
            await self.health.set(service, status)

    async def stop(self, grace_s: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)


class _LateInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Hands calls to the broker's guard (built after the server, with the cluster)."""

    def __init__(self, guard: Callable[[], Guard | None],
                 refused: Callable[[str, BrokerError], None]) -> None:
        self.guard = guard
        self.refused = refused
        self._inner: grpc.aio.ServerInterceptor | None = None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if self._inner is None:
            guard = self.guard()
            if guard is None:
                return await continuation(handler_call_details)
            self._inner = GuardInterceptor(guard, GRPC_RULES, self.refused)
        return await self._inner.intercept_service(continuation, handler_call_details)
