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
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cluster_bench import free_ports  # noqa: E402 - bench/ is on sys.path
from latency import latency_ms  # noqa: E402

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
        try:
            for i in range(len(self.client_ports)):
                self.procs.append(self._spawn(i))
            self.wait_listening()
        except BaseException:
            self.stop()  # __exit__ does not run when __enter__ raises
            raise
        return self

    def wait_listening(self, timeout: float = 30.0) -> None:
        """Until every server takes TCP connections: a client that connects earlier gets
        refused and nats-py prints each refusal as a traceback."""
        deadline = time.monotonic() + timeout
        for port, proc in zip(self.client_ports, self.procs, strict=True):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"nats-server on port {port} exited: see {self.root}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"nats-server not listening on {port} within "
                                           f"{timeout:.0f} s") from None
                    time.sleep(0.05)

    def _spawn(self, i: int) -> subprocess.Popen[bytes]:
        assert self.exe is not None
        log = open(self.root / f"nats-{i}.log", "ab")  # noqa: SIM115 (closed in stop)
        self._logs.append(log)
        # A session of its own: stop() kills the group, whatever the server left behind.
        return subprocess.Popen([self.exe, "-c", str(self._config(i))], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def kill9(self, i: int) -> None:
        proc = self.procs[i]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def restart(self, i: int) -> None:
        self.kill9(i)
        self.procs[i] = self._spawn(i)
        self.wait_listening()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
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


async def _produce(js: Any, subject: str, records: int, size: int,
                   rate: float = 0.0) -> dict[str, Any]:
    """Acknowledged publishes; `rate` records/s (0: as fast as acks allow). Each ack's
    latency is from the publish call to the ack."""
    payload = b"x" * size
    clock = time.perf_counter
    latencies: list[float] = []

    def acked(sent: float) -> Any:
        return lambda fut: (None if fut.cancelled() or fut.exception()
                            else latencies.append(clock() - sent))

    interval = 1 / rate if rate > 0 else 0.0
    futures = []
    started = clock()
    for i in range(records):
        if interval:
            delay = started + i * interval - clock()
            if delay > 0:
                await asyncio.sleep(delay)
        sent = clock()
        fut = await js.publish_async(subject, payload)
        fut.add_done_callback(acked(sent))
        futures.append(fut)
    await asyncio.gather(*futures)
    elapsed = clock() - started
    return {"records": records, "record_size": size, "seconds": round(elapsed, 3),
            "records_per_s": records / elapsed, "mb_per_s": records * size / elapsed / MB,
            "rate": rate, "latency_ms": latency_ms(latencies)}


async def _consume(js: Any, subject: str, records: int, size: int,
                   durable: str = "bench-reader") -> dict[str, Any]:
    from nats.js.api import AckPolicy, ConsumerConfig

    # No acks: like an Odradek consumer, the reader only tracks its position (and with
    # explicit acks the server stops at max_ack_pending unacknowledged messages).
    sub = await js.pull_subscribe(subject, durable=durable, stream=STREAM,
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


async def _quiet(_error: Exception) -> None:
    """A server is killed on purpose: nats-py's default handler would print every failed
    reconnect as a traceback."""


async def _stream_state(servers: list[str]) -> tuple[str | None, bool]:
    """(the stream leader's server name, whether every replica is current)."""
    import nats

    nc = await nats.connect(servers=servers, connect_timeout=2, max_reconnect_attempts=2,
                            error_cb=_quiet)
    try:
        info = await nc.jetstream().stream_info(STREAM)
    finally:
        await nc.close()
    cl = info.cluster
    if cl is None or not cl.leader:
        return None, False
    replicas = cl.replicas or []
    return cl.leader, len(replicas) == 2 and all(r.current for r in replicas)


async def _wait_stream_ready(servers: list[str], timeout: float = 60.0) -> str:
    """Until the stream has a leader and both followers are current; the leader's name."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            leader, current = await _stream_state(servers)
            if leader is not None and current:
                return leader
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise SystemExit(f"the JetStream stream had no current replicas in {timeout:.0f} s")
        await asyncio.sleep(0.2)


async def _failover_try(cluster: JetStreamCluster, subject: str, victim: int,
                        request_timeout: float) -> float:
    """One publisher, connected to the servers other than the victim, publishes one message
    at a time awaiting its ack; the victim (the stream leader's server) gets kill -9 after
    100 acks. Seconds from the kill to the first ack after it."""
    import nats

    others = [s for i, s in enumerate(cluster.servers) if i != victim]
    nc = await nats.connect(servers=others, connect_timeout=5, max_reconnect_attempts=60,
                            error_cb=_quiet)
    js = nc.jetstream()
    try:
        for _ in range(100):
            await js.publish(subject, b"f" * 100, timeout=5)
        killed_at = time.monotonic()
        cluster.kill9(victim)
        deadline = killed_at + 60
        while time.monotonic() < deadline:
            try:
                # A publish the dead leader took is never answered: the timeout bounds how
                # late the first ack from the new leader can be seen.
                await js.publish(subject, b"f" * 100, timeout=request_timeout)
                return time.monotonic() - killed_at
            except Exception:
                await asyncio.sleep(0.005)
        raise SystemExit("JetStream: no acked publish within 60 s of the kill")
    finally:
        await nc.close()


def jetstream_failover(workdir: Path, tries: int, request_timeout: float = 0.25,
                       progress: Any = None) -> dict[str, Any]:
    """kill -9 of the stream leader's server under an acknowledged publisher, `tries`
    times on one R3 file stream; the killed server is restarted and caught up between
    tries."""
    times: list[float] = []

    async def run(cluster: JetStreamCluster) -> None:
        nc, js = await _connect(cluster.servers, 16)
        try:
            await _create_stream(js, "failover.>")
        finally:
            await nc.close()
        for attempt in range(tries):
            leader = await _wait_stream_ready(cluster.servers)
            victim = int(leader.removeprefix("n"))
            seconds = await _failover_try(cluster, "failover.x", victim, request_timeout)
            times.append(seconds)
            cluster.restart(victim)
            await _wait_stream_ready(cluster.servers)
            if progress is not None:
                progress(f"JetStream failover try {attempt + 1}/{tries}: {seconds * 1000:.0f}"
                         f" ms (killed server {leader})")

    with JetStreamCluster(workdir) as cluster:
        asyncio.run(run(cluster))
    ordered = sorted(times)
    return {"tries": len(ordered), "median_s": round(statistics.median(ordered), 4),
            "min_s": round(ordered[0], 4), "max_s": round(ordered[-1], 4),
            "request_timeout_s": request_timeout, "all_s": [round(t, 4) for t in times]}


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
