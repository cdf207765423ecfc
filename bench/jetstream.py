"""NATS JetStream, three clustered `nats-server` processes on loopback, measured the way the
cluster part of `make bench` measures Odradek: a stream with R3 and file storage,
acknowledged publishes (each ack means the message is on a quorum of replicas) of 1 KB and
100 B messages, then a pull consumer reading the 1 KB stream back.

The client is nats-py, as Odradek's is Python too, with up to `window` publishes awaiting
their ack at once (JetStream's own async publishing), so neither side is measured one round
trip at a time. JetStream, like Odradek by default, acknowledges before fsync.

    python bench/jetstream.py [--records N] [--small-records N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cluster_bench import free_ports  # noqa: E402 - bench/ is on sys.path

MB = 1_000_000
STREAM = "BENCH"


class JetStreamCluster:
    """Three nats-server processes with JetStream, clustered through routes."""

    def __init__(self, root: Path, n: int = 3) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.exe = shutil.which("nats-server")
        if self.exe is None:
            raise RuntimeError("nats-server is not installed (Debian package nats-server)")
        ports = free_ports(2 * n)
        self.client_ports, self.route_ports = ports[:n], ports[n:]
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[Any] = []

    @property
    def servers(self) -> list[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.client_ports]

    def _config(self, i: int) -> Path:
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for j, p in
                           enumerate(self.route_ports) if j != i)
        store = self.root / f"js-{i}"
        store.mkdir(parents=True, exist_ok=True)
        conf = self.root / f"nats-{i}.conf"
        conf.write_text(
            f'server_name: "n{i}"\nlisten: "127.0.0.1:{self.client_ports[i]}"\n'
            f'jetstream {{ store_dir: "{store}" }}\n'
            f'cluster {{ name: "bench", listen: "127.0.0.1:{self.route_ports[i]}", '
            f"routes: [{routes}] }}\n")
        return conf

    def start(self) -> JetStreamCluster:
        assert self.exe is not None
        for i in range(len(self.client_ports)):
            log = open(self.root / f"nats-{i}.log", "wb")  # noqa: SIM115 (closed in stop)
            self._logs.append(log)
            self.procs.append(subprocess.Popen([self.exe, "-c", str(self._config(i))],
                                               stdout=log, stderr=subprocess.STDOUT))
        return self

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for log in self._logs:
            log.close()

    def __enter__(self) -> JetStreamCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _connect(servers: list[str], window: int) -> tuple[Any, Any]:
    import nats

    nc = await nats.connect(servers=servers, connect_timeout=5, max_reconnect_attempts=60)
    return nc, nc.jetstream(publish_async_max_pending=window)


async def _create_stream(js: Any, subject: str, timeout: float = 60.0) -> None:
    """Until the cluster has elected its meta leader, creating a stream fails: retry."""
    from nats.js.api import StorageType, StreamConfig

    deadline = time.monotonic() + timeout
    while True:
        try:
            await js.add_stream(StreamConfig(name=STREAM, subjects=[subject], num_replicas=3,
                                             storage=StorageType.FILE))
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _produce(js: Any, subject: str, records: int, size: int) -> dict[str, Any]:
    payload = b"x" * size
    started = time.perf_counter()
    futures = [await js.publish_async(subject, payload) for _ in range(records)]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    return {"records": records, "record_size": size, "seconds": round(elapsed, 3),
            "records_per_s": records / elapsed, "mb_per_s": records * size / elapsed / MB}


async def _consume(js: Any, subject: str, records: int, size: int) -> dict[str, Any]:
    from nats.js.api import AckPolicy, ConsumerConfig

    # No acks: like an Odradek consumer, the reader only tracks its position (and with
    # explicit acks the server stops at max_ack_pending unacknowledged messages).
    sub = await js.pull_subscribe(subject, durable="bench-reader", stream=STREAM,
                                  config=ConsumerConfig(ack_policy=AckPolicy.NONE))
    seen = 0
    started = time.perf_counter()
    while seen < records:
        msgs = await sub.fetch(batch=min(1000, records - seen), timeout=10)
        seen += len(msgs)
    elapsed = time.perf_counter() - started
    return {"records": seen, "record_size": size, "seconds": round(elapsed, 3),
            "records_per_s": seen / elapsed, "mb_per_s": seen * size / elapsed / MB}


async def _run(servers: list[str], records: int, small_records: int,
               window: int) -> dict[str, Any]:
    nc, js = await _connect(servers, window)
    try:
        await _create_stream(js, "bench.>")
        big = await _produce(js, "bench.1k", records, 1024)
        small = await _produce(js, "bench.100b", small_records, 100)
        consume = await _consume(js, "bench.1k", records, 1024)
    finally:
        await nc.close()
    return {"produce_1k": big, "produce_100b": small, "consume_1k": consume}


def jetstream_bench(workdir: Path, records: int, small_records: int,
                    window: int = 4096) -> dict[str, Any]:
    """The figures of one run on a fresh three-server cluster in `workdir`."""
    with JetStreamCluster(workdir) as cluster:
        result = asyncio.run(_run(cluster.servers, records, small_records, window))
    version = subprocess.run([str(cluster.exe), "--version"], capture_output=True,
                             text=True).stdout.strip()
    return {"servers": 3, "replicas": 3, "storage": "file", "window": window,
            "version": version, **result}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--small-records", type=int, default=200_000)
    ap.add_argument("--window", type=int, default=4096,
                    help="publishes awaiting their ack at once")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="jetstream-bench-"))
    try:
        result = jetstream_bench(workdir, args.records, args.small_records, args.window)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        for name in ("produce_1k", "produce_100b", "consume_1k"):
            r = result[name]
            print(f"{name:<14} {r['records_per_s']:>11,.0f} rec/s {r['mb_per_s']:>8.1f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
