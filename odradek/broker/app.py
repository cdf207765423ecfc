"""The composition root: builds one broker (Raft host, cluster node, topics, groups,
security, housekeeping, metrics) and its listeners, and runs it until stopped."""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from odradek.broker import broker_configs, clock, leadership
from odradek.broker.auth.guard import Guard
from odradek.broker.auth.setup import (
    SecuritySettings,
    build_guard,
    ensure_bootstrap_user,
    ensure_cluster_secret,
)
from odradek.broker.broker_configs import BrokerConfigEntry
from odradek.broker.cluster import ClusterNode, ClusterSettings
from odradek.broker.data_dir import DataDirLock, claim
from odradek.broker.errors import ListenError
from odradek.broker.extra_listeners import ExtraListeners
from odradek.broker.groups.coordinator import CoordinatorSettings, GroupCoordinator
from odradek.broker.grpc.server import GrpcListener
from odradek.broker.housekeeping import Housekeeper
from odradek.broker.kafka.server import KafkaListener
from odradek.broker.kafka.server import bind as bind_kafka
from odradek.broker.listeners import ListenerSpec
from odradek.broker.metrics.broker import BrokerMetrics, MetricsServer, StateCollector
from odradek.broker.metrics.certs import CertificateCollector
from odradek.broker.metrics.groups import GroupCollector
from odradek.broker.peers.raft_transport import RaftTransport
from odradek.broker.producers.manager import DEFAULT_MAX_NAMES, DEFAULT_NAME_EXPIRATION_MS
from odradek.broker.replication.host import RaftHost, ThreadSyncer
from odradek.broker.replication.producer_state import DEFAULT_EXPIRATION_MS
from odradek.broker.replication.replica import ReplicatedPartition
from odradek.broker.replication.state_journal import StateJournal
from odradek.broker.topic_admin import TopicAdmin
from odradek.raft import Message
from odradek.security.hosts import host_port
from odradek.security.tls import ServerTLS, TLSConfigError
from odradek.storage import LogConfig

log = logging.getLogger("odradek.broker")

MAX_MESSAGE_BYTES = 128 * 1024 * 1024
NEVER = 9223372036854775807


@dataclass
class BrokerSettings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 9092
    broker_id: int = 0
    rack: str | None = None
    # Metadata voters, broker id -> "host:port"; empty: this broker alone.
    voters: dict[int, str] = field(default_factory=dict)
    topic_defaults: dict[str, str] = field(default_factory=dict)
    default_replication_factor: int = 3
    retention_check_interval_ms: int = 30_000
    flush_check_interval_ms: int = 100
    tick_interval_ms: int = 50
    # Partition fsyncs in a worker thread (off: on the event loop, to compare in bench/).
    fsync_in_worker: bool = True
    metadata_snapshot_every: int = 1000
    producer_id_expiration_ms: int = DEFAULT_EXPIRATION_MS
    # Named producers: forgotten when idle this long (Kafka's
    # transactional.id.expiration.ms), and at most this many in the cluster.
    producer_name_expiration_ms: int = DEFAULT_NAME_EXPIRATION_MS
    max_producer_names: int = DEFAULT_MAX_NAMES
    # After a start, each partition's sealed segments (trusted by a clean start, not
    # scanned) are read back at this rate to check their CRCs; 0: never.
    scrub_bytes_per_s: int = 16 << 20
    shutdown_grace_s: float = 5.0
    # A stopping broker first hands its partitions' leadership to caught-up followers
    # that are alive, for at most this long, so a rolling restart costs no election.
    hand_off_s: float = 5.0
    # Preferred leaders taken back in the background (off: only on demand).
    auto_leader_rebalance: bool = True
    # The flags the broker was started with, as it describes them (DescribeBrokerConfigs).
    flags: tuple[BrokerConfigEntry, ...] = ()
    # Prometheus metrics over HTTP on this port (of `host`); 0: not served. The CLI
    # defaults it to the gRPC port + 1000.
    metrics_port: int = 0
    metrics_host: str | None = None  # default: host
    # The metrics over TLS (needs `tls`), and/or only for "Authorization: Bearer <token>".
    metrics_tls: bool = False
    metrics_token: str | None = field(default=None, repr=False)
    # TLS identity; when set the listener speaks TLS only and brokers dial each other
    # with mutual TLS (which needs client_auth "required" in a cluster of several).
    tls: ServerTLS | None = None
    # Users, ACLs and who may do what (odradek.broker.auth).
    security: SecuritySettings = field(default_factory=SecuritySettings)
    # Partitions of the internal topic __consumer_offsets when this broker creates it.
    offsets_topic_partitions: int = 8
    # The Kafka wire-protocol listener on this port of `host` (0: any free one); None: off.
    kafka_port: int | None = None
    # Further client listeners with their advertised addresses (listeners.py).
    listeners: tuple[ListenerSpec, ...] = ()


__all__ = ["Broker", "BrokerSettings", "ListenError", "serve"]


class Broker:
    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.defaults = LogConfig.from_dict(settings.topic_defaults)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.listener: GrpcListener | None = None
        self.port = settings.port
        self.cluster: ClusterNode | None = None
        self.transport: RaftTransport | None = None
        self.host: RaftHost | None = None
        self.syncer: ThreadSyncer | None = None
        self.open_workers: ThreadSyncer | None = None
        self.groups: GroupCoordinator | None = None
        self.kafka: KafkaListener | None = None
        self.kafka_port = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self.metrics = BrokerMetrics()
        self.extra = ExtraListeners(settings.listeners, settings.tls, lambda: self.guard,
                                    self.metrics)
        self.metrics.registry.register(StateCollector(
            settings.broker_id, settings.data_dir, lambda: self.cluster, lambda: self.host,
            lambda: self.transport))
        if settings.tls is not None:
            self.metrics.registry.register(CertificateCollector(settings.tls))
        self.metrics.registry.register(GroupCollector(lambda: self.groups))
        self.metrics.topics = self._hosted_topics
        self.metrics_server: MetricsServer | None = None
        self.guard: Guard | None = None
        self._data_lock: DataDirLock | None = None
        self.housekeeper = Housekeeper(self.metrics)
        # Set once the cluster knows this broker and its replicas know their leaders.
        self.serving = asyncio.Event()

    @property
    def metrics_url(self) -> str | None:
        if self.metrics_server is None:
            return None
        scheme = "https" if self.metrics_server.tls is not None else "http"
        return f"{scheme}://{self.metrics_server.host}:{self.metrics_server.port}/metrics"

    async def start(self) -> None:
        s = self.settings
        self.listener = GrpcListener(lambda: self.guard, self.metrics)
        if s.tls is not None and len(s.voters) > 1 and not s.tls.require_client_auth:
            raise TLSConfigError(
                "brokers reach each other on the TLS listener with mutual TLS: a cluster "
                "of several brokers needs --tls-client-auth required")
        self.port = self.listener.bind(s.host, s.port, s.tls)
        kafka_socket = bind_kafka(s.host, s.kafka_port) if s.kafka_port is not None else None
        if kafka_socket is not None:
            self.kafka_port = kafka_socket.getsockname()[1]
        endpoints = self.extra.bind()
        peer_tls = s.tls.client() if s.tls is not None else None
        voters = dict(s.voters) or {s.broker_id: host_port(s.host, self.port)}
        if s.broker_id in voters:
            voters[s.broker_id] = host_port(s.host, self.port)
        self._data_lock = claim(s.data_dir, s.broker_id, _cluster_id(voters), list(voters))
        resolve = self._resolve
        self.transport = RaftTransport(s.broker_id, resolve, self._deliver, tls=peer_tls,
                                       peer_lost=self._peer_lost)
        tick_s = s.tick_interval_ms / 1000
        transport = self.transport
        self.syncer = ThreadSyncer() if s.fsync_in_worker else None
        # New replicas' files open here, not on the event loop (replica_files.py); apart
        # from the fsync workers, so that opening 1,000 replicas delays no group's fsync.
        self.open_workers = ThreadSyncer(2, "odradek-open") if s.fsync_in_worker else None
        election_s = tick_s * ClusterSettings.election_ticks
        # Five pings per liveness window: a late one or two do not wake a silent broker's
        # quiet groups, and an idle broker pair exchanges 10 envelopes a second, not 20.
        ping_s = election_s / 5
        self.host = RaftHost(s.broker_id, transport.send, tick_s,
                             alive=lambda peer: transport.alive(peer, election_s),
                             on_tick=lambda: transport.ping_idle(ping_s),
                             stall_after_s=election_s / 2, syncer=self.syncer,
                             journal=StateJournal(s.data_dir) if self.syncer else None)
        cluster_settings = ClusterSettings(
            broker_id=s.broker_id, host=s.host, port=self.port, data_dir=s.data_dir,
            voters=voters, rack=s.rack, topic_defaults=self.defaults,
            kafka_port=self.kafka_port, endpoints=endpoints,
            tick_interval_s=s.tick_interval_ms / 1000, cluster_id=_cluster_id(voters),
            metadata_snapshot_every=s.metadata_snapshot_every,
            producer_id_expiration_ms=s.producer_id_expiration_ms,
            scrub_bytes_per_s=s.scrub_bytes_per_s,
            auto_leader_rebalance=s.auto_leader_rebalance)
        self.cluster = ClusterNode(cluster_settings, self.host, self._sync_peers,
                                   broker_alive=lambda peer: transport.alive(peer, election_s),
                                   tls=peer_tls, open_workers=self.open_workers)
        self.cluster.flush_observer = self.metrics.observe_fsync
        self.cluster.repair.observer = self.metrics.corrupt_batch_found
        self.cluster.producer_ids.name_expiration_ms = s.producer_name_expiration_ms
        self.cluster.producer_ids.max_names = s.max_producer_names
        self.cluster.adopt_log = self.housekeeper.adopt
        self.guard = build_guard(s.security, s.tls, len(voters.keys() | {s.broker_id}),
                                 self.cluster)
        admin = TopicAdmin(self.cluster, self.defaults, s.default_replication_factor)
        admin.broker_configs = broker_configs.describe(s.flags, s.topic_defaults)
        self.groups = GroupCoordinator(self.cluster, admin, CoordinatorSettings(
            offsets_partitions=s.offsets_topic_partitions,
            offsets_replication_factor=s.default_replication_factor))
        self.listener.add_services(admin, self.cluster, self.guard, self.groups,
                                   self.transport, self.metrics)
        if kafka_socket is not None:
            self.kafka = KafkaListener(admin, self.groups, lambda: self.guard, self.metrics,
                                       tls=s.tls)
        self.extra.add_services(admin, self.cluster, self.guard, self.groups,
                                self.kafka.classic if self.kafka is not None else None)
        for peer in voters:
            if peer != s.broker_id:
                self.transport.add_peer(peer)
        if s.metrics_port > 0:
            # With TLS, the listener's certificate and client policy (mutual TLS when
            # the listener requires client certificates).
            metrics_tls = s.tls.ssl_context() if s.metrics_tls and s.tls is not None else None
            self.metrics_server = MetricsServer(self.metrics, s.metrics_host or s.host,
                                                s.metrics_port, metrics_tls, s.metrics_token)
            try:
                await self.metrics_server.start()
            except OSError as exc:  # metrics must not keep a broker from serving
                log.error("broker %d cannot serve metrics on %s:%d: %s", s.broker_id,
                          self.metrics_server.host, s.metrics_port, exc)
                self.metrics_server = None
        await self.listener.start()
        self.transport.start()
        self.host.start()
        self.cluster.start()
        self.groups.start()
        if self.kafka is not None and kafka_socket is not None:
            await self.kafka.start(kafka_socket)
            log.info("broker %d serves Kafka clients on %s:%d (%s)", s.broker_id, s.host,
                     self.kafka_port, "tls" if s.tls is not None else "plaintext")
        await self.extra.start()
        self._tasks = [asyncio.create_task(self._flush_loop()),
                       asyncio.create_task(self._retention_loop()),
                       asyncio.create_task(self._serve_when_registered())]
        self._tasks.append(asyncio.create_task(ensure_cluster_secret(self.cluster)))
        expiry_check_s = min(60.0, max(0.1, s.producer_name_expiration_ms / 10_000))
        self._tasks.append(asyncio.create_task(
            self.cluster.producer_ids.expiry_loop(expiry_check_s)))
        if s.security.bootstrap_user is not None:
            self._tasks.append(asyncio.create_task(ensure_bootstrap_user(
                self.cluster, *s.security.bootstrap_user,
                authoritative=s.security.bootstrap_password_authoritative)))
        log.info("broker %d listening on %s:%d (%s), data in %s", s.broker_id, s.host,
                 self.port, "tls" if s.tls is not None else "plaintext", s.data_dir)
        if self.metrics_url is not None:
            log.info("broker %d serves metrics at %s", s.broker_id, self.metrics_url)

    async def _serve_when_registered(self) -> None:
        """Health stays NOT_SERVING until the cluster knows this broker: before that it
        can neither take writes nor say where partitions live."""
        assert self.cluster is not None and self.listener is not None
        await self.listener.set_serving(False)
        await self.extra.set_serving(False)
        me = self.settings.broker_id
        cluster = self.cluster
        registered = False
        while not registered:
            registered = await cluster.wait_for(lambda image: me in image.brokers, 3600)
        # Catching up: wait (a bounded time) until every local replica knows its leader.
        deadline = clock.monotonic() + 60
        while clock.monotonic() < deadline and (cluster.opening or any(
                p.leader is None for p in cluster.partitions.values())):
            await asyncio.sleep(0.05)
        await self.listener.set_serving(True)
        await self.extra.set_serving(True)
        self.serving.set()
        log.info("broker %d registered with the cluster and serving", me)

    def _sync_peers(self) -> None:
        """Every registered broker is a transport peer: a lower id can only be reached
        over the stream it dials, so it must dial each broker it may hear from."""
        if self.cluster is None or self.transport is None:
            return
        for broker_id in self.cluster.image.brokers:
            if broker_id != self.settings.broker_id:
                self.transport.add_peer(broker_id)

    def _resolve(self, broker_id: int) -> str | None:
        return self.cluster.address_of(broker_id) if self.cluster is not None else None

    def _peer_lost(self, broker_id: int) -> None:
        if self.cluster is not None:
            leadership.broker_lost(self.cluster, broker_id)

    def _deliver(self, group: str, message: Message) -> None:
        if self.host is not None:
            self.host.deliver(group, message)

    def _hosted_topics(self) -> set[str]:
        return {topic for topic, _ in self.cluster.partitions} if self.cluster else set()

    def partitions(self) -> list[ReplicatedPartition]:
        return list(self.cluster.partitions.values()) if self.cluster is not None else []

    async def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.cluster is not None and self.settings.hand_off_s > 0:
            await self._hand_off_leadership(self.settings.hand_off_s)
        if self.listener is not None:
            await self.listener.stop(self.settings.shutdown_grace_s)
            await self.extra.stop(self.settings.shutdown_grace_s)
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        if self.kafka is not None:
            await self.kafka.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.housekeeper.stop()
        if self.groups is not None:
            await self.groups.stop()
        if self.host is not None:
            await self.host.stop()
        if self.transport is not None:
            await self.transport.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        for workers in (self.syncer, self.open_workers):  # after the logs closed: idle
            if workers is not None:
                await asyncio.get_running_loop().run_in_executor(None, workers.close)
        if self.host is not None and self.host.journal is not None:
            self.host.journal.close()
        if self._data_lock is not None:
            self._data_lock.release()
        log.info("broker %d stopped", self.settings.broker_id)

    async def _hand_off_leadership(self, timeout_s: float) -> None:
        assert self.cluster is not None
        deadline = clock.monotonic() + timeout_s
        first = left = self.cluster.hand_off_leadership()
        while left and clock.monotonic() < deadline:
            await asyncio.sleep(0.05)
            left = self.cluster.hand_off_leadership()
        if first:
            log.info("broker %d handed leadership of %d/%d partitions off before stopping",
                     self.settings.broker_id, first - left, first)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def _flush_loop(self) -> None:
        # Only topics with a finite flush.ms need a timer; flush.messages is enforced
        # by the log itself on append. Which partitions those are is looked up once a
        # second, not at every check: a pass over a thousand idle partitions ten times a
        # second was a visible part of an idle broker's CPU.
        timed: list[ReplicatedPartition] = []
        listed_at = -math.inf
        while True:
            await asyncio.sleep(self.settings.flush_check_interval_ms / 1000)
            now = clock.monotonic()
            if now - listed_at >= 1.0:
                listed_at = now
                timed = [p for p in self.partitions() if p.log.config.flush_ms < NEVER]
            for partition in timed:
                if not partition.closed:
                    partition.log.flush_if_due()

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.retention_check_interval_ms / 1000)
            await self.housekeeper.run_once(self.partitions)

def _cluster_id(voters: dict[int, str]) -> str:
    """Every broker derives the same id from the voter set it was given."""
    text = ",".join(f"{k}={v}" for k, v in sorted(voters.items()))
    return uuid.uuid5(uuid.NAMESPACE_URL, f"odradek:{text}").hex


async def serve(settings: BrokerSettings) -> None:
    """Runs until SIGTERM or SIGINT, then shuts down cleanly."""
    broker = Broker(settings)
    await broker.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal received, shutting down")
    await broker.stop()
