"""Prometheus metrics of one broker, served over HTTP at /metrics.

Every broker has its own CollectorRegistry, so several brokers in one process (`odradek
dev`) do not clash. Counters and histograms are updated where things happen (requests,
produce and fetch traffic, fsyncs, housekeeping); everything that is current state
(partitions led, terms, lags, log sizes, disk space) is read by a collector when
Prometheus scrapes, so nothing has to keep gauges up to date.

The HTTP endpoint is a small asyncio server: a scrape runs on the broker's event loop,
where the state it reads is never changed under it."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import ssl
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from odradek.broker.cluster import META_GROUP
from odradek.raft.quorum import majority
from odradek.records.batch import iter_batches

if TYPE_CHECKING:
    from odradek.broker.cluster import ClusterNode
    from odradek.broker.peers.raft_transport import RaftTransport
    from odradek.broker.replication.host import RaftHost
    from odradek.broker.replication.replica import ReplicatedPartition

log = logging.getLogger("odradek.broker.metrics.broker")

DEFAULT_METRICS_PORT_OFFSET = 1000
"""Without --metrics-port, a broker serves metrics on its gRPC port + 1000 (9092 -> 10092)."""

RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
               5.0, 10.0, 30.0)
FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 0.5, 1.0)


def count_records(data: bytes | memoryview) -> int:
    """Records in the batches of `data`, from their headers alone (nothing is decoded);
    Raft's control batches are not counted."""
    return sum(header.record_count for _, header in iter_batches(data)
               if not header.is_control)


class BrokerMetrics:
    """The registry of one broker and the counters the broker updates in place."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        r = self.registry
        self.rpc_requests = Counter(
            "odradek_rpc_requests", "gRPC requests handled, by method", ["method"], registry=r)
        self.rpc_errors = Counter(
            "odradek_rpc_errors", "gRPC requests that failed, by method, status code and reason",
            ["method", "code", "reason"], registry=r)
        self.rpc_duration = Histogram(
            "odradek_rpc_duration_seconds", "Time to handle a gRPC request, by method",
            ["method"], buckets=RPC_BUCKETS, registry=r)
        self.kafka_requests = Counter(
            "odradek_kafka_requests", "Kafka wire-protocol requests handled, by API name",
            ["api"], registry=r)
        self.kafka_duration = Histogram(
            "odradek_kafka_request_duration_seconds",
            "Time to handle a Kafka request (from its turn on the connection), by API name",
            ["api"], buckets=RPC_BUCKETS, registry=r)
        self.kafka_errors = Counter(
            "odradek_kafka_errors", "Error codes in Kafka responses (each partition's and "
            "each group's counted), by API name and Kafka error name", ["api", "error"],
            registry=r)
        self.kafka_connections = Counter(
            "odradek_kafka_connections", "Kafka client connections accepted", registry=r)
        self.bytes_in = Counter(
            "odradek_topic_bytes_in", "Record batch bytes produced to this broker, by topic",
            ["topic"], registry=r)
        self.records_in = Counter(
            "odradek_topic_records_in", "Records produced to this broker, by topic",
            ["topic"], registry=r)
        self.bytes_out = Counter(
            "odradek_topic_bytes_out", "Record batch bytes sent to consumers, by topic",
            ["topic"], registry=r)
        self.records_out = Counter(
            "odradek_topic_records_out", "Records sent to consumers, by topic",
            ["topic"], registry=r)
        self.fsync_duration = Histogram(
            "odradek_log_flush_duration_seconds",
            "Time to fsync a partition log's unflushed segments", buckets=FSYNC_BUCKETS,
            registry=r)
        self.retention_deleted = Counter(
            "odradek_log_retention_deleted_segments",
            "Segments deleted by retention (time or size), by topic", ["topic"], registry=r)
        self.compaction_runs = Counter(
            "odradek_log_compaction_runs", "Compaction runs that cleaned segments, by topic",
            ["topic"], registry=r)
        self.compaction_cleaned = Counter(
            "odradek_log_compaction_cleaned_bytes",
            "Bytes removed from segments by compaction, by topic", ["topic"], registry=r)
        self.corrupt_batches = Counter(
            "odradek_corrupt_batches",
            "Stored batches that failed their CRC check when read (never served; the "
            "replica cuts its log there and is repaired from the others), by topic",
            ["topic"], registry=r)
        self._per_topic = (self.bytes_in, self.records_in, self.bytes_out, self.records_out,
                           self.retention_deleted, self.compaction_runs,
                           self.compaction_cleaned, self.corrupt_batches)
        # The topics hosted here (set by the broker): their counters are shown from 0.
        self.topics: Callable[[], Iterable[str]] | None = None
        self.housekeeping_errors = Counter(
            "odradek_log_housekeeping_errors", "Retention or compaction runs that failed",
            registry=r)

    # -------------------------------------------------------------------- updates
    def observe_rpc(self, method: str, seconds: float, code: str | None = None,
                    reason: str | None = None) -> None:
        self.rpc_requests.labels(method).inc()
        self.rpc_duration.labels(method).observe(seconds)
        if code is not None:
            self.rpc_errors.labels(method, code, reason or "").inc()

    def produced(self, topic: str, data: bytes) -> None:
        self.bytes_in.labels(topic).inc(len(data))
        self.records_in.labels(topic).inc(count_records(data))

    def fetched(self, topic: str, data: bytes | memoryview) -> None:
        if data:
            self.bytes_out.labels(topic).inc(len(data))
            self.records_out.labels(topic).inc(count_records(data))

    def observe_fsync(self, seconds: float) -> None:
        self.fsync_duration.observe(seconds)

    def corrupt_batch_found(self, topic: str) -> None:
        self.corrupt_batches.labels(topic).inc()

    def retention_ran(self, topic: str, deleted_segments: int) -> None:
        if deleted_segments:
            self.retention_deleted.labels(topic).inc(deleted_segments)

    def compaction_ran(self, topic: str, segments_cleaned: int, bytes_cleaned: int) -> None:
        if segments_cleaned:
            self.compaction_runs.labels(topic).inc()
            self.compaction_cleaned.labels(topic).inc(max(bytes_cleaned, 0))

    def render(self) -> bytes:
        if self.topics is not None:
            # Per-topic counters start at 0 for every hosted topic, so that a topic
            # without traffic still has series (rates of 0 rather than no data).
            for topic in self.topics():
                for counter in self._per_topic:
                    counter.labels(topic)
        return generate_latest(self.registry)


class StateCollector(Collector):
    """Reads the broker's current state at scrape time."""

    def __init__(self, broker_id: int, data_dir: Path,
                 cluster: Callable[[], ClusterNode | None],
                 host: Callable[[], RaftHost | None],
                 transport: Callable[[], RaftTransport | None] = lambda: None) -> None:
        self.broker_id = broker_id
        self.data_dir = data_dir
        self._cluster = cluster
        self._host = host
        self._transport = transport

    def collect(self) -> Iterable[Metric]:
        yield from self._disk()
        yield from self._peers()
        cluster = self._cluster()
        if cluster is None:
            return
        controller = cluster.controller_id
        yield _gauge("odradek_broker_is_controller",
                     "1 if this broker is the metadata controller (the metadata Raft leader)",
                     1 if controller == self.broker_id else 0)
        yield _gauge("odradek_cluster_brokers", "Brokers registered in the cluster metadata",
                     len(cluster.image.brokers))
        yield from self._partitions(list(cluster.partitions.values()))
        host = self._host()
        if host is not None:
            elections = host.elections
            yield _counter("odradek_raft_elections",
                           "Elections started by this broker's Raft groups (became candidate)",
                           elections.started)
            yield _counter("odradek_raft_elections_won",
                           "Elections won by this broker's Raft groups (became leader)",
                           elections.won)
            yield _gauge("odradek_raft_quiescent_partitions",
                         "Partition replicas of this broker whose Raft group is idle and "
                         "stopped ticking (an idle partition costs nothing per tick)",
                         sum(1 for name in host.quiet if name != META_GROUP))

    def _peers(self) -> Iterator[Metric]:
        transport = self._transport()
        if transport is None:
            return
        stats = sorted(transport.stats().items())
        connected = GaugeMetricFamily(
            "odradek_raft_peer_connected",
            "1 if the Raft stream to the peer broker is up", labels=["peer"])
        pending = GaugeMetricFamily(
            "odradek_raft_peer_pending_bytes",
            "Raft envelope bytes queued for the peer broker", labels=["peer"])
        counters = {
            field: CounterMetricFamily(f"odradek_raft_peer_{field}", doc, labels=["peer"])
            for field, doc in (
                ("sent_messages", "Raft messages sent to the peer broker"),
                ("received_messages", "Raft messages received from the peer broker"),
                ("dropped_messages",
                 "Raft messages for the peer dropped (not connected, queue full, stream broke)"),
                ("streams", "Raft streams established with the peer broker"))}
        for peer, st in stats:
            label = [str(peer)]
            connected.add_metric(label, 1 if st.connected else 0)
            pending.add_metric(label, st.pending_bytes)
            for field, family in counters.items():
                family.add_metric(label, getattr(st, field))
        yield connected
        yield pending
        yield from counters.values()

    def _disk(self) -> Iterator[Metric]:
        try:
            st = os.statvfs(self.data_dir)
        except OSError:
            return
        yield _gauge("odradek_data_dir_free_bytes",
                     "Bytes available to the broker on the data directory's filesystem",
                     st.f_bavail * st.f_frsize)
        yield _gauge("odradek_data_dir_size_bytes",
                     "Total size of the data directory's filesystem", st.f_blocks * st.f_frsize)

    def _partitions(self, partitions: list[ReplicatedPartition]) -> Iterator[Metric]:
        pl = ["topic", "partition"]
        led = followed = under = no_leader = no_quorum = 0
        term = GaugeMetricFamily("odradek_partition_raft_term",
                                 "Current Raft term of each local partition replica", labels=pl)
        leader_g = GaugeMetricFamily(
            "odradek_partition_leader", "1 if this broker leads the partition", labels=pl)
        under_g = GaugeMetricFamily(
            "odradek_partition_under_replicated",
            "1 if this broker leads the partition and a voter is not in sync", labels=pl)
        in_sync = GaugeMetricFamily(
            "odradek_partition_in_sync_replicas",
            "Replicas in sync, as the leader sees them (leaders only)", labels=pl)
        replicas = GaugeMetricFamily(
            "odradek_partition_replicas", "Voters of the partition's Raft group", labels=pl)
        lag = GaugeMetricFamily(
            "odradek_partition_follower_commit_lag",
            "Leader's commit index minus the follower's match index (leaders only)",
            labels=[*pl, "follower"])
        hw = GaugeMetricFamily("odradek_partition_high_watermark",
                               "High watermark (first offset not yet committed)", labels=pl)
        end = GaugeMetricFamily("odradek_partition_log_end_offset",
                                "Next offset to be written to the local log", labels=pl)
        start = GaugeMetricFamily("odradek_partition_log_start_offset",
                                  "First offset still in the local log", labels=pl)
        size = GaugeMetricFamily("odradek_log_size_bytes",
                                 "Bytes in the partition's local log segments", labels=pl)
        segments = GaugeMetricFamily("odradek_log_segments",
                                     "Segments in the partition's local log", labels=pl)
        for p in partitions:
            if p.closed:
                continue
            labels = [p.topic, str(p.index)]
            node = p.node
            voters = sorted(node.config.voters)
            term.add_metric(labels, node.term)
            replicas.add_metric(labels, len(voters))
            hw.add_metric(labels, p.high_watermark)
            with contextlib.suppress(Exception):  # a log closed between the check and the read
                end.add_metric(labels, p.log.log_end_offset)
                start.add_metric(labels, p.log.log_start_offset)
                size.add_metric(labels, p.log.size_bytes)
                segments.add_metric(labels, p.log.segment_count)
            if node.leader is None:
                no_leader += 1
            is_leader = node.is_leader()
            leader_g.add_metric(labels, 1 if is_leader else 0)
            if not is_leader:
                if node.leader is not None:
                    followed += 1
                continue
            led += 1
            live = len(p.in_sync_replicas())
            in_sync.add_metric(labels, live)
            lagging = live < len(voters)
            under_g.add_metric(labels, 1 if lagging else 0)
            under += lagging
            if live < majority(len(voters)):
                no_quorum += 1
            commit = node.commit_index
            for follower in voters:
                if follower == node.id:
                    continue
                progress = node.progress.get(follower)
                match = progress.match if progress is not None else 0
                lag.add_metric([*labels, str(follower)], max(commit - match, 0))
        yield _gauge("odradek_partitions", "Partition replicas hosted by this broker",
                     sum(1 for p in partitions if not p.closed))
        yield _gauge("odradek_partitions_led", "Partitions this broker leads", led)
        yield _gauge("odradek_partitions_followed",
                     "Partitions this broker follows (another broker leads)", followed)
        yield _gauge("odradek_partitions_under_replicated",
                     "Partitions this broker leads with a voter not in sync", under)
        yield _gauge("odradek_partitions_without_leader",
                     "Local partition replicas that know no leader", no_leader)
        yield _gauge("odradek_partitions_without_quorum",
                     "Partitions this broker leads with fewer than a majority in sync",
                     no_quorum)
        yield from (term, leader_g, under_g, in_sync, replicas, lag, hw, end, start, size,
                    segments)

    def describe(self) -> Iterable[Metric]:
        return []


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


class MetricsServer:
    """GET /metrics over HTTP/1.1 (one response per connection), on the event loop."""

    def __init__(self, metrics: BrokerMetrics, host: str, port: int,
                 tls: ssl.SSLContext | None = None, token: str | None = None) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.tls = tls
        # With a token, /metrics answers only "Authorization: Bearer <token>" (401 else).
        self._token = token.encode() if token else None
        self._server: asyncio.Server | None = None

    def _authorized(self, request: bytes) -> bool:
        if self._token is None:
            return True
        for line in request.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"authorization":
                scheme, _, given = value.strip().partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(),
                                                                           self._token)
        return False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            line = request.split(b"\r\n", 1)[0].decode("latin-1").split()
            method, path = (line[0], line[1]) if len(line) >= 2 else ("", "")
            path = path.split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path == "/metrics" and not self._authorized(request):
                status, ctype, body = "401 Unauthorized", "text/plain", b"bearer token needed\n"
            elif path == "/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, self.metrics.render()
            elif path == "/":
                status, ctype = "200 OK", "text/html"
                body = b'<html><body><a href="/metrics">metrics</a></body></html>\n'
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
            writer.write(head.encode("latin-1") + (body if method != "HEAD" else b""))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError, ssl.SSLError):
            log.debug("metrics request from a client that went away or sent garbage")
        except Exception:
            log.exception("metrics request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):  # the client is gone: nothing to tell
                await writer.wait_closed()
