"""Runs a broker: the gRPC server with health and reflection, plus housekeeping tasks."""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from odradek.broker.service import AdminService, BrokerService
from odradek.broker.topics import TopicManager
from odradek.storage import LogConfig
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc

log = logging.getLogger("odradek.broker")

MAX_MESSAGE_BYTES = 128 * 1024 * 1024
NEVER = 9223372036854775807


@dataclass
class BrokerSettings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 9092
    broker_id: int = 0
    topic_defaults: dict[str, str] = field(default_factory=dict)
    retention_check_interval_ms: int = 30_000
    flush_check_interval_ms: int = 100
    shutdown_grace_s: float = 5.0


class Broker:
    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        defaults = LogConfig.from_dict(settings.topic_defaults)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.topics = TopicManager(settings.data_dir, defaults)
        self.health = HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.port = settings.port
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        self.topics.open()
        cluster_id = _cluster_id(self.settings.data_dir)
        self.server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ])
        broker = BrokerService(self.topics, self.settings.broker_id, self.settings.host,
                               self.settings.port, cluster_id)
        pb_grpc.add_BrokerServicer_to_server(broker, self.server)  # type: ignore[no-untyped-call]
        admin = AdminService(self.topics, broker)
        pb_grpc.add_AdminServicer_to_server(admin, self.server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [pb.DESCRIPTOR.services_by_name[s].full_name for s in ("Broker", "Admin")]
        names += [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                  reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, self.server)
        self.port = self.server.add_insecure_port(f"{self.settings.host}:{self.settings.port}")
        if self.port == 0:
            raise OSError(f"cannot listen on {self.settings.host}:{self.settings.port}")
        broker.port = self.port
        await self.server.start()
        for service in ("", *names[:2]):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._tasks = [asyncio.create_task(self._flush_loop()),
                       asyncio.create_task(self._retention_loop())]
        log.info("broker %d listening on %s:%d, data in %s", self.settings.broker_id,
                 self.settings.host, self.port, self.settings.data_dir)

    async def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        await self.health.enter_graceful_shutdown()
        if self.server is not None:
            await self.server.stop(self.settings.shutdown_grace_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.topics.close()
        log.info("broker %d stopped", self.settings.broker_id)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def _flush_loop(self) -> None:
        # Only topics with a finite flush.ms need a timer; flush.messages is enforced
        # by the log itself on append.
        while True:
            await asyncio.sleep(self.settings.flush_check_interval_ms / 1000)
            for topic in list(self.topics.topics.values()):
                if topic.config.flush_ms >= NEVER:
                    continue
                for partition in topic.partitions:
                    await partition.run_locked(partition.log.flush_if_due)

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.retention_check_interval_ms / 1000)
            await self.run_housekeeping()

    async def run_housekeeping(self) -> None:
        """Retention and compaction over every partition, one at a time."""
        for topic in list(self.topics.topics.values()):
            for partition in topic.partitions:
                try:
                    if "delete" in topic.config.cleanup_policy:
                        await partition.run_locked(partition.log.enforce_retention)
                    if "compact" in topic.config.cleanup_policy:
                        await partition.run_locked(partition.log.compact)
                except Exception:
                    log.exception("housekeeping failed for %s-%d", topic.name, partition.index)


def _cluster_id(data_dir: Path) -> str:
    path = data_dir / "cluster_id"
    if not path.exists():
        path.write_text(uuid.uuid4().hex)
    return path.read_text().strip()


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
