"""Prometheus metrics of one streams instance, served over HTTP at /metrics.

Each App has its own CollectorRegistry (several apps in one process do not clash). Nothing
keeps gauges up to date: a scrape asks the app's event loop for a snapshot of its tasks,
standbys and restores (lags need the brokers' end offsets, and the runtime's state is only
ever read on its own loop), and the HTTP thread that prometheus_client runs waits for it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from odradek.streams.registry import task_name
from odradek.streams.runtime import RestoreProgress, Runtime, TaskMetrics

log = logging.getLogger("odradek.streams.metrics")

SCRAPE_TIMEOUT_S = 10.0
"""A loop busy longer than this (a long batch) makes the scrape fail, not hang."""


@dataclass(frozen=True)
class Snapshot:
    tasks: list[TaskMetrics]
    standby_lags: dict[str, int]
    restoring: list[RestoreProgress]
    restored: int
    committed: int
    restore_seconds: float


async def snapshot(runtime: Runtime) -> Snapshot:
    return Snapshot(await runtime.task_metrics(),
                    {task_name(t): lag for t, lag in (await runtime.standbys.lags()).items()},
                    list(runtime.restoring.values()), runtime.restored, runtime.committed,
                    runtime.restore_seconds)


class StreamsCollector(Collector):
    def __init__(self, application_id: str, runtime: Callable[[], Runtime | None],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.application_id, self._runtime, self._loop = application_id, runtime, loop

    def collect(self) -> Iterator[Metric]:
        runtime = self._runtime()
        if runtime is None:
            return
        snap = asyncio.run_coroutine_threadsafe(snapshot(runtime), self._loop).result(
            SCRAPE_TIMEOUT_S)
        base = {"application": self.application_id, "instance_id": runtime.instance_id}
        yield from _task_families(base, snap.tasks)
        yield from _restore_families(base, snap)
        standby = GaugeMetricFamily(
            "odradek_streams_standby_lag", "Changelog records a standby copy is behind by",
            labels=[*base, "task"])
        for task, lag in sorted(snap.standby_lags.items()):
            standby.add_metric([*base.values(), task], lag)
        yield standby
        yield _counter("odradek_streams_committed_records",
                       "Input records whose offsets this instance committed", base,
                       snap.committed)


Family = type[CounterMetricFamily] | type[GaugeMetricFamily]

TASK_SERIES: list[tuple[Family, str, str, Callable[[TaskMetrics], float]]] = [
    (CounterMetricFamily, "odradek_streams_task_records_in", "Records processed by a task",
     lambda m: m.records_in),
    (CounterMetricFamily, "odradek_streams_task_records_out",
     "Records a task sent: outputs and changelog records", lambda m: m.records_out),
    (CounterMetricFamily, "odradek_streams_task_dropped_late_records",
     "Records a task dropped as late (after a window's grace)", lambda m: m.dropped_late),
    (GaugeMetricFamily, "odradek_streams_task_lag",
     "Records of a task's input partitions not yet polled", lambda m: m.lag),
    (GaugeMetricFamily, "odradek_streams_task_stream_time_seconds",
     "A task's stream time: the highest record timestamp it has seen",
     lambda m: max(0, m.stream_time) / 1000),
    (GaugeMetricFamily, "odradek_streams_task_restored_records",
     "Changelog records replayed into a task's stores when it opened here",
     lambda m: m.restored),
]


def _task_families(base: dict[str, str], tasks: list[TaskMetrics]) -> Iterator[Metric]:
    labels = [*base, "task"]
    for kind, name, doc, value in TASK_SERIES:
        family = kind(name, doc, labels=labels)
        for m in tasks:
            family.add_metric([*base.values(), task_name(m.task)], value(m))
        yield family
    keys = GaugeMetricFamily("odradek_streams_store_keys",
                             "Keys in a task's state store as of its last commit",
                             labels=[*labels, "store"])
    for m in tasks:
        for store, n in sorted(m.store_keys.items()):
            keys.add_metric([*base.values(), task_name(m.task), store], n)
    yield keys


def _restore_families(base: dict[str, str], snap: Snapshot) -> Iterator[Metric]:
    labels = [*base, "task", "store"]
    remaining = GaugeMetricFamily("odradek_streams_restore_remaining_offsets",
                                  "Changelog offsets a store being restored has still to "
                                  "read", labels=labels)
    progress = GaugeMetricFamily("odradek_streams_restore_progress_ratio",
                                 "Part of its changelog a store being restored has read",
                                 labels=labels)
    for r in snap.restoring:
        values = [*base.values(), task_name(r.task), r.store]
        remaining.add_metric(values, max(0, r.end - r.position))
        progress.add_metric(values, (r.position - r.start) / max(1, r.end - r.start))
    yield remaining
    yield progress
    yield _counter("odradek_streams_restored_records",
                   "Changelog records replayed into this instance's stores", base,
                   snap.restored)
    yield _counter("odradek_streams_restore_seconds",
                   "Time this instance spent replaying changelogs", base, snap.restore_seconds)


def _counter(name: str, doc: str, base: dict[str, str], value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=list(base))
    family.add_metric(list(base.values()), value)
    return family


class MetricsServer:
    """/metrics of one app on host:port (port 0: any free one), in prometheus_client's
    HTTP thread."""

    def __init__(self, application_id: str, runtime: Callable[[], Runtime | None],
                 host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = (application_id, runtime)
        self.host, self.port = host, port
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None

    def start(self) -> None:
        self.registry.register(StreamsCollector(*self._collector, asyncio.get_running_loop()))
        self._server, self._thread = start_http_server(self.port, self.host, self.registry)
        self.port = self._server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
