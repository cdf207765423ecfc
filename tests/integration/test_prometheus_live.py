"""A real Prometheus (the Debian package's binary) scraping a real three-broker cluster
(TLS between everyone, so the certificate metrics exist) under light load: every
dashboard and alert expression has data, and killing a broker makes the under-replicated
alert go pending, and restarting it clears it."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from kafka import KafkaAdminClient
from kafka import errors as kerrors

from odradek.cli.dev_cluster import DevPrometheus
from odradek.records.builder import BatchBuilder
from odradek.security.certs import make_pki
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from tests.brokers import ClusterProcesses, client_tls, commit_group_offsets, free_port, tls_args
from tests.promql import all_exprs
from tests.promtool import require

pytestmark = pytest.mark.slow

TOPIC = "watched"
UNDER_REPLICATED = "sum by (instance) (odradek_partitions_under_replicated) > 0"
_COMPARISON = re.compile(r"\s(==|!=|>=|<=|>|<)\s*[-+0-9.e]+\s*$")


def query(prometheus: DevPrometheus, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as reply:
        body = json.loads(reply.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def wait_until(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"not within {timeout}s: {what}")


def concrete(expr: str) -> str:
    """A dashboard expression with Grafana's variables filled in; an alert expression
    without its threshold (the series must exist even while the alert is quiet)."""
    expr = expr.replace("$__rate_interval", "15s").replace("$instance", ".*")
    expr = expr.replace("$topic", ".*").replace("$group", ".*")
    return _COMPARISON.sub("", expr)


class Load:
    """Produces and fetches a few records a second on every partition, through whichever
    live broker leads it (the others answer NOT_LEADER: errors to count too)."""

    def __init__(self, cluster: ClusterProcesses, partitions: int) -> None:
        self.cluster = cluster
        self.partitions = partitions
        self.down: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        builder = BatchBuilder()
        builder.append(1000, b"key", b"value")
        records = builder.build()
        channels = [b.health_channel() for b in self.cluster.brokers]
        try:
            while not self._stop.is_set():
                for partition in range(self.partitions):
                    for i, channel in enumerate(channels):
                        if i in self.down:
                            continue
                        stub = pb_grpc.BrokerStub(channel)
                        try:
                            stub.Produce(pb.ProduceRequest(
                                topic=TOPIC, partition=partition, records=records), timeout=2)
                            stub.Fetch(pb.FetchRequest(
                                topic=TOPIC, partition=partition, offset=0, max_bytes=4096),
                                timeout=2)
                            break
                        except grpc.RpcError:
                            continue
                self._stop.wait(0.2)
        finally:
            for channel in channels:
                channel.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcesses]:
    pki = make_pki(tmp_path / "pki")
    procs = ClusterProcesses(tmp_path, extra_args=tls_args(pki), tls=client_tls(pki))
    for broker in procs.brokers:  # the Kafka listener too: the dashboards show its traffic
        port = free_port()
        broker.kafka_port = port  # type: ignore[attr-defined]
        broker.extra_args += ["--kafka-port", str(port)]
    procs.pki = pki  # type: ignore[attr-defined]
    try:
        yield procs.start()
    finally:
        procs.stop()


def kafka_error(cluster: ClusterProcesses) -> None:
    """A Kafka request answered with an error (a topic that does not exist), over the
    listener's mutual TLS: the Kafka request and error panels then have series."""
    pki = cluster.pki  # type: ignore[attr-defined]
    admin = KafkaAdminClient(
        bootstrap_servers=[f"127.0.0.1:{b.kafka_port}" for b in cluster.brokers],  # type: ignore[attr-defined]
        security_protocol="SSL", ssl_cafile=str(pki.ca), ssl_certfile=str(pki.client_cert),
        ssl_keyfile=str(pki.client_key), ssl_check_hostname=False)
    try:
        with pytest.raises(kerrors.UnknownTopicOrPartitionError):
            admin.delete_topics(["no-such-topic"])
    finally:
        admin.close()


def test_prometheus_sees_every_expression_and_the_under_replicated_alert(
        cluster: ClusterProcesses) -> None:
    require("prometheus")
    with cluster.brokers[0].health_channel() as channel:
        pb_grpc.AdminStub(channel).CreateTopic(pb.CreateTopicRequest(
            name=TOPIC, partitions=3, replication_factor=3,
            configs={"flush.messages": "1"}), timeout=30)
    # A group without members that committed offset 0: its lag grows with the load.
    commit_group_offsets(cluster.brokers, "watchers", TOPIC, {0: 0, 1: 0, 2: 0})
    kafka_error(cluster)
    targets = [f"127.0.0.1:{b.metrics_port}" for b in cluster.brokers]
    prometheus = DevPrometheus("127.0.0.1", targets, interval="1s")
    assert prometheus.start()
    try:
        with Load(cluster, partitions=3) as load:
            wait_until("prometheus ready", lambda: bool(query(prometheus, "up")))
            exprs = {concrete(expr): where for where, expr in all_exprs()}
            empty: dict[str, str] = dict(exprs)

            def all_have_data() -> bool:
                for expr in list(empty):
                    if query(prometheus, expr):
                        del empty[expr]
                return not empty

            try:
                wait_until("every expression has data", all_have_data, timeout=90)
            except TimeoutError:
                pytest.fail(f"no series for: {empty}")
            assert not query(prometheus, UNDER_REPLICATED)

            victim = 2
            load.down.add(victim)
            cluster.brokers[victim].kill9()
            wait_until("under-replicated partitions seen",
                       lambda: bool(query(prometheus, UNDER_REPLICATED)))
            wait_until("the alert is pending or firing", lambda: bool(query(
                prometheus, 'ALERTS{alertname="OdradekUnderReplicatedPartitions"}')))
            wait_until("broker down seen", lambda: bool(query(
                prometheus, 'up{job="odradek"} == 0')))

            cluster.brokers[victim].start()
            load.down.discard(victim)
            wait_until("under-replicated partitions cleared",
                       lambda: not query(prometheus, UNDER_REPLICATED))
            wait_until("the alert cleared", lambda: not query(
                prometheus, 'ALERTS{alertname="OdradekUnderReplicatedPartitions"}'))
    finally:
        prometheus.stop()
