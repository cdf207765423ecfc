"""`make bench-compare`: Odradek and NATS JetStream side by side in one run, each driven by
its Python client and by a native C client.

  Odradek    3 brokers on loopback, topics of 6 partitions, RF=3, acks=quorum.
             Python: `odradek bench` (odradek.client). Native: confluent-kafka (librdkafka)
             over the Kafka listener, acks=all, idempotent.
  JetStream  3 clustered nats-server, one R3 file stream.
             Python: nats-py. Native: libnats through bench/nats_bench.c (built with gcc).

Both clusters run at once and every figure is taken for the four system x client pairs
one after the other, so a noisy neighbour hits both systems alike: produce of 100 B and
1 KB records, produce-ack latency of 1 KB records at --rate-mb MB/s, consume of
--consume-bytes already stored. Then failover after kill -9 of a leader (Odradek: the
partition leader's broker; JetStream: the stream leader's server), and dd for the disk.

    python bench/compare.py [--quick] [--consume-bytes N] [--out-dir bench/results]

Writes bench/results/<date>-<host>.md and .json, and the PNG plots beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version as metadata_version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_bench import Cluster, create_topics, failover_bench, log, wait_balanced  # noqa: E402
from compare_report import human_bytes, table, write  # noqa: E402
from jetstream import (  # noqa: E402
    STREAM,
    JetStreamCluster,
    _connect,
    _consume,
    _create_stream,
    _produce,
    jetstream_failover,
)
from kafka_bench import cluster_with_kafka, kafka_consume, kafka_produce  # noqa: E402
from run import dd_write_speed, run_bench  # noqa: E402

BENCH = Path(__file__).resolve().parent
MB = 1_000_000
PARTITIONS = 6
WINDOW = 4096  # JetStream publishes awaiting their ack at once, both clients


def gcc_command(gcc: str, exe: Path, *extra: str) -> list[str]:
    return [gcc, "-O2", "-Wall", "-Wextra", "-std=c11", "-D_POSIX_C_SOURCE=200809L", *extra,
            "-o", str(exe), str(BENCH / "nats_bench.c"), "-lnats"]


def build_nats_bench(out: Path) -> Path | None:
    """bench/nats_bench.c built with gcc against libnats, or None (with a warning)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        log("warning: gcc is not installed: no native JetStream client")
        return None
    exe = out / "nats_bench"
    r = subprocess.run(gcc_command(gcc, exe), capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        log("warning: bench/nats_bench.c did not build (libnats-dev missing?): no native "
            f"JetStream client\n{r.stderr.strip()}")
        return None
    return exe


def run_nats_bench(exe: Path, *args: str | int | float, timeout: float = 900) -> dict[str, Any]:
    """One run of the C program; its JSON line. The timeout kills it if a server hangs."""
    import json

    r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"nats_bench {args[0]} failed ({r.returncode}): {r.stderr.strip()}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def versions(nats_exe: Path | None) -> dict[str, str]:
    out: dict[str, str] = {}
    server = shutil.which("nats-server")
    if server:
        out["nats-server"] = subprocess.run([server, "--version"], capture_output=True,
                                            text=True).stdout.strip().removeprefix(
                                                "nats-server: ")
    if nats_exe is not None:
        out["libnats"] = run_nats_bench_version(nats_exe)
    try:
        import confluent_kafka

        out["librdkafka"] = confluent_kafka.libversion()[0]
        out["confluent-kafka"] = metadata_version("confluent-kafka")
    except ImportError:
        log("warning: confluent-kafka is not installed")
    with contextlib.suppress(ImportError):
        from nats.aio.client import __version__ as nats_py

        out["nats-py"] = nats_py
    with contextlib.suppress(Exception):
        out["odradek"] = metadata_version("odradek")
    return out


def run_nats_bench_version(exe: Path) -> str:
    return subprocess.run([str(exe), "version"], capture_output=True, text=True,
                          timeout=10).stdout.strip()


def machine(nats_exe: Path | None) -> dict[str, Any]:
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                     "")
    return {"host": socket.gethostname(), "cores": os.cpu_count(), "cpu": model,
            "memory": f"{mem_kb / 1024 / 1024:.1f} GiB", "kernel": platform.release(),
            "python": platform.python_version(), **versions(nats_exe)}


class Compare:
    """Both clusters, up for the throughput parts; each method takes one figure for the
    four system x client pairs in turn."""

    def __init__(self, args: argparse.Namespace, workdir: Path, nats_exe: Path | None,
                 results: dict[str, Any]) -> None:
        self.args = args
        self.workdir = workdir
        self.nats_exe = nats_exe
        self.results = results
        self.figures: dict[str, dict[str, dict[str, Any]]] = {
            s: {"python": {}, "native": {}} for s in ("odradek", "jetstream")}
        results["figures"] = self.figures
        self.odradek: Cluster | None = None
        self.kafka_boot = ""
        self.jetstream: JetStreamCluster | None = None
        self.topic_n = 0

    # ------------------------------------------------------------------ plumbing

    def take(self, system: str, client: str, key: str, fn: Callable[[], dict[str, Any]]) -> None:
        """One figure; a failure is noted and the run goes on with the others."""
        label = f"{system}/{client}/{key}"
        try:
            started = time.monotonic()
            figure = fn()
            self.figures[system][client][key] = figure
            shown = {k: figure[k] for k in ("records_per_s", "mb_per_s", "latency_ms",
                                            "median_s", "max_s") if k in figure}
            log(f"  {label}: {shown} ({time.monotonic() - started:.0f} s)")
        except (Exception, SystemExit) as exc:  # one broken figure must not lose the rest
            log(f"  {label} FAILED: {exc}")
            self.results["skipped"].append(f"{label}: failed: {str(exc)[:200]}")

    def skip(self, what: str) -> None:
        log(f"warning: {what}: skipped")
        self.results["skipped"].append(what)

    def topic(self, what: str) -> str:
        self.topic_n += 1
        return f"cmp-{what}-{self.topic_n}"

    @contextlib.contextmanager
    def clusters(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            cluster, self.kafka_boot = cluster_with_kafka(self.workdir / "odradek")
            # Stopped also when start() fails half-way (__exit__ would not run then).
            stack.callback(cluster.stop)
            self.odradek = cluster.start()
            if shutil.which("nats-server") is None:
                self.skip("JetStream: nats-server is not installed (apt-get install "
                          "nats-server)")
            else:
                self.jetstream = stack.enter_context(JetStreamCluster(self.workdir / "nats"))
                asyncio.run(self._js_stream())
            yield
        self.odradek = self.jetstream = None

    async def _js_stream(self) -> None:
        assert self.jetstream is not None
        nc, js = await _connect(self.jetstream.servers, WINDOW)
        try:
            await _create_stream(js, "bench.>")
        finally:
            await nc.close()

    def _odradek_topic(self, what: str) -> str:
        assert self.odradek is not None
        name = self.topic(what)
        create_topics(self.odradek.bootstrap, [name], PARTITIONS, 3)
        wait_balanced(self.odradek, [name], 20)
        return name

    def _grpc_common(self) -> list[str]:
        assert self.odradek is not None
        return ["--bootstrap", self.odradek.bootstrap, "--partitions", str(PARTITIONS),
                "--replication-factor", "3", "--acks", "quorum", "--no-progress"]

    def _js(self, work: Callable[[Any], Any]) -> dict[str, Any]:
        assert self.jetstream is not None
        servers = self.jetstream.servers

        async def go() -> dict[str, Any]:
            nc, js = await _connect(servers, WINDOW)
            try:
                return dict(await work(js))
            finally:
                await nc.close()

        return asyncio.run(go())

    def _native_js(self, *args: str | int | float) -> dict[str, Any]:
        assert self.jetstream is not None and self.nats_exe is not None
        return run_nats_bench(self.nats_exe, args[0], ",".join(self.jetstream.servers),
                              *args[1:])

    # ------------------------------------------------------------------- figures

    def produce(self, key: str, records: int, size: int, rate: float = 0.0) -> None:
        """records of size bytes, every pair in turn; rate records/s, 0 for full speed."""
        extra = ["--rate", str(rate)] if rate else []
        self.take("odradek", "python", key, lambda: run_bench(
            "produce", *self._grpc_common(), "--topic", self._odradek_topic(key),
            "--records", str(records), "--record-size", str(size), *extra))
        if self.jetstream is not None:
            subject = f"bench.{self.topic(key)}"
            self.take("jetstream", "python", key, lambda: self._js(
                lambda js: _produce(js, subject, records, size, rate)))
        self.take("odradek", "native", key, lambda: kafka_produce(
            self.kafka_boot, self._odradek_topic(key), records, size, rate))
        if self.jetstream is not None and self.nats_exe is not None:
            subject = f"bench.{self.topic(key)}"
            self.take("jetstream", "native", key, lambda: self._native_js(
                "produce", subject, records, size, WINDOW, rate))

    def consume(self, nbytes: int) -> None:
        """Fills each system with nbytes of 1 KB records with its fastest client (the
        native one when there), then reads them back with each client."""
        records = max(1, nbytes // 1024)
        log(f"  storing {human_bytes(records * 1024)} ({records:,} records of 1 KB) in each "
            "system ...")
        topic = self._odradek_topic("store")
        kafka_produce(self.kafka_boot, topic, records, 1024)
        self.take("odradek", "python", "consume_1k", lambda: run_bench(
            "consume", "--bootstrap", self.bootstrap, "--topic", topic, "--records",
            str(records), "--no-progress"))
        subject = "bench.store"
        if self.jetstream is not None:
            if self.nats_exe is not None:
                self._native_js("produce", subject, records, 1024, WINDOW, 0)
            else:
                self._js(lambda js: _produce(js, subject, records, 1024))
            self.take("jetstream", "python", "consume_1k", lambda: self._js(
                lambda js: _consume(js, subject, records, 1024, durable="py-reader")))
        self.take("odradek", "native", "consume_1k", lambda: kafka_consume(
            self.kafka_boot, topic, PARTITIONS, records, 1024))
        if self.jetstream is not None and self.nats_exe is not None:
            self.take("jetstream", "native", "consume_1k", lambda: self._native_js(
                "consume", STREAM, subject, "c-reader", records))

    @property
    def bootstrap(self) -> str:
        assert self.odradek is not None
        return self.odradek.bootstrap


def options(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small counts: a few minutes")
    ap.add_argument("--records-1k", type=int, help="1 KB records per produce (200000; "
                    "quick 20000)")
    ap.add_argument("--records-100b", type=int, help="100 B records per produce (500000; "
                    "quick 30000)")
    ap.add_argument("--rate-mb", type=float, default=5.0,
                    help="MB/s of 1 KB records for the latency figures (5)")
    ap.add_argument("--rate-seconds", type=float, help="length of that run (30 s; quick 5)")
    ap.add_argument("--consume-bytes", type=int,
                    help="bytes stored, then consumed (1 GB = 1000000000; quick 50 MB)")
    ap.add_argument("--tries", type=int, help="failover tries per system (5; quick 2)")
    ap.add_argument("--dd-mib", type=int, default=256)
    ap.add_argument("--out-dir", default=str(BENCH / "results"))
    ap.add_argument("--name", help="results file name without suffix (<date>-<host>)")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the servers' logs and data")
    args = ap.parse_args(argv)

    def pick(value: Any, full: Any, short: Any) -> Any:
        return value if value is not None else (short if args.quick else full)

    args.records_1k = pick(args.records_1k, 200_000, 20_000)
    args.records_100b = pick(args.records_100b, 500_000, 30_000)
    args.rate_seconds = pick(args.rate_seconds, 30.0, 5.0)
    args.consume_bytes = pick(args.consume_bytes, 1_000_000_000, 50_000_000)
    args.tries = pick(args.tries, 5, 2)
    return args


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    workdir = Path(tempfile.mkdtemp(prefix="odradek-compare-"))
    now = datetime.datetime.now(datetime.UTC)
    nats_exe = build_nats_bench(workdir)
    results: dict[str, Any] = {
        "date": now.strftime("%Y-%m-%d %H:%M UTC"), "quick": args.quick,
        "command": "make bench-compare" + (" (python bench/compare.py "
                                           + shlex.join(sys.argv[1:]) + ")"
                                           if sys.argv[1:] else ""),
        "machine": machine(nats_exe), "rate_mb": args.rate_mb,
        "consume_bytes": args.consume_bytes, "skipped": [],
        "notes": ["the machine is shared (a CI run and other engineers' work may run at "
                  "the same time): figures are noisy, compare the ratios of one run",
                  "both clusters are up during every throughput figure: the idle one "
                  "costs the measured one some CPU on this 2-core machine"]}
    if nats_exe is None:
        results["skipped"].append("JetStream native client: gcc or libnats-dev missing")
    load_start = os.getloadavg()[0]
    started = time.monotonic()
    rate = round(args.rate_mb * MB / 1024)
    try:
        log(f"measuring the disk: dd {args.dd_mib} MiB with fdatasync in {workdir} ...")
        results["dd_mb_per_s"] = round(dd_write_speed(workdir, args.dd_mib), 1)
        bench = Compare(args, workdir, nats_exe, results)
        with bench.clusters():
            log(f"== produce 100 B x {args.records_100b:,} ==")
            bench.produce("produce_100b", args.records_100b, 100)
            log(f"== produce 1 KB x {args.records_1k:,} ==")
            bench.produce("produce_1k", args.records_1k, 1024)
            log(f"== 1 KB at {args.rate_mb} MB/s ({rate}/s) for {args.rate_seconds:.0f} s ==")
            bench.produce("latency_1k", int(rate * args.rate_seconds), 1024, rate)
            log(f"== consume {human_bytes(args.consume_bytes)} stored ==")
            bench.consume(args.consume_bytes)
        log(f"== failover after kill -9, {args.tries} tries each ==")
        if shutil.which("nats-server"):
            bench.take("jetstream", "python", "failover", lambda: jetstream_failover(
                workdir / "nats-failover", args.tries, progress=log))
        bench.take("odradek", "python", "failover",
                   lambda: failover_bench(workdir, args.tries))
    except BaseException:
        log(f"the bench failed: logs and data are kept in {workdir}")
        raise
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["load_average_1min"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    results["notes"].append(
        f"load average (1 min) of the machine {load_start:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end (2 cores); the run took "
        f"{results['elapsed_s']:.0f} s")
    if args.keep:
        log(f"logs and data are in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    host = socket.gethostname().split(".")[0]
    stem = Path(args.out_dir) / (args.name or f"{now:%Y-%m-%d}-{host}")
    written = write(results, stem, with_plots=not args.no_plots)
    print(table(results))
    print(f"\n(took {results['elapsed_s']:.0f} s; wrote {', '.join(map(str, written))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
