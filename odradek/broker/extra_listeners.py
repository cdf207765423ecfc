"""The broker's further listeners (listeners.py) as servers: bound before the broker core
is built (their advertised addresses go into its registration), given the client services
once it exists, started and stopped with the broker."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import replace

from odradek.broker.auth.guard import Guard
from odradek.broker.cluster import ClusterNode
from odradek.broker.errors import ListenError
from odradek.broker.groups.classic import ClassicGroups
from odradek.broker.groups.coordinator import GroupCoordinator
from odradek.broker.grpc.server import GrpcListener
from odradek.broker.kafka.server import KafkaListener
from odradek.broker.kafka.server import bind as bind_kafka
from odradek.broker.listeners import Addresses, ListenerSpec
from odradek.broker.metadata.commands import Endpoints
from odradek.broker.metrics.broker import BrokerMetrics
from odradek.broker.topic_admin import TopicAdmin
from odradek.security.tls import ServerTLS

log = logging.getLogger("odradek.broker")


def listener_tls(spec: ListenerSpec, tls: ServerTLS | None) -> ServerTLS | None:
    if spec.security == "plaintext" or tls is None:
        return None
    return replace(tls, client_auth="required" if spec.security == "mtls" else "none")


class ExtraListeners:
    def __init__(self, specs: tuple[ListenerSpec, ...], tls: ServerTLS | None,
                 guard: Callable[[], Guard | None], metrics: BrokerMetrics) -> None:
        self.specs = specs
        self.tls = tls
        self.metrics = metrics
        self._guard = guard
        self.grpc: dict[str, GrpcListener] = {}
        self.kafka: dict[str, KafkaListener] = {}
        self._sockets: dict[str, socket.socket] = {}
        self.ports: dict[str, int] = {}

    def bind(self) -> Endpoints:
        """Binds every listener; their endpoints as the metadata will carry them."""
        for spec in self.specs:
            try:
                self._bind(spec)
            except ListenError as exc:
                for sock in self._sockets.values():
                    sock.close()
                raise ListenError(f"listener {spec.name!r} (--extra-listener): {exc}") from exc
        return tuple(spec.endpoint(self.ports[spec.name]) for spec in self.specs)

    def _bind(self, spec: ListenerSpec) -> None:
        if spec.protocol == "grpc":
            listener = GrpcListener(self._guard, self.metrics)
            self.ports[spec.name] = listener.bind(spec.bind_host, spec.bind_port,
                                                  listener_tls(spec, self.tls))
            self.grpc[spec.name] = listener
        else:
            sock = bind_kafka(spec.bind_host, spec.bind_port)
            self._sockets[spec.name] = sock
            self.ports[spec.name] = sock.getsockname()[1]

    def add_services(self, admin: TopicAdmin, cluster: ClusterNode, guard: Guard,
                     groups: GroupCoordinator, classic: ClassicGroups | None) -> None:
        """`classic`: the broker's own Kafka listener's classic groups, if it has one."""
        for spec in self.specs:
            addresses = Addresses(lambda: cluster.image, spec.name, spec.protocol == "kafka")
            if spec.protocol == "grpc":
                self.grpc[spec.name].add_client_services(admin, cluster, guard, groups,
                                                         self.metrics, addresses)
                continue
            kafka = KafkaListener(admin, groups, self._guard, self.metrics,
                                  tls=listener_tls(spec, self.tls), addresses=addresses,
                                  classic=classic)
            classic = kafka.classic  # one set of classic groups, whichever listener
            self.kafka[spec.name] = kafka

    async def start(self) -> None:
        for listener in self.grpc.values():
            await listener.start()
        for name, kafka in self.kafka.items():
            await kafka.start(self._sockets[name])
        for spec in self.specs:
            advertised = spec.endpoint(self.ports[spec.name])
            log.info("listener %s (%s, %s) on %s:%d, advertised as %s:%d", spec.name,
                     spec.protocol, spec.security, spec.bind_host, self.ports[spec.name],
                     advertised.host, advertised.port)

    async def set_serving(self, serving: bool) -> None:
        for listener in self.grpc.values():
            await listener.set_serving(serving)

    async def stop(self, grace_s: float) -> None:
        for listener in self.grpc.values():
            await listener.stop(grace_s)
        # The ones sharing another's classic groups first: the owner stops them.
        for kafka in sorted(self.kafka.values(), key=lambda k: k.owns_classic):
            await kafka.stop()
