"""How long a 3-broker cluster takes to create many partitions at RF=3 (issue #18), and to
load them again after a restart.

Two shapes, each on a fresh cluster: one topic of 1,000 partitions, and 10 topics of 100
created by 10 concurrent calls. For each it reports, as a client sees it:
  call_s     the CreateTopic call(s) returning
  led_s      from the start until every live broker's Metadata shows a leader for every
             partition (the call waits for leaders on the controller's image; the other
             brokers learn them when they apply the same commands); none if not within
             --timeout, and then how many each broker showed
then stops the three brokers and starts them again:
  serving_s  from the start of the processes until all three say SERVING (their health
             check waits for every replica to know its leader)
  reled_s    until every broker's Metadata shows a leader for every partition again
and, measured just before each shape, file_us: microseconds to make one empty file or
directory on the same disk (what creation time depends on; see file_creation_us).

    python bench/create_bench.py [--shape 1x1000,10x100] [--profile-dir DIR] [--json]

With --profile-dir, py-spy records each broker while the partitions are created (a
flame graph and the raw stacks per broker), for finding what creation spends its time on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_bench import Cluster, bench_workdir, log, metadata  # noqa: E402

from odradek.client.admin import Admin  # noqa: E402

SHAPES = {"1x1000": (1, 1000), "10x100": (10, 100)}


def led_counts(cluster: Cluster, topics: list[str]) -> list[int]:
    """For each live broker, how many partitions its Metadata shows with a leader."""
    counts = []
    for broker in cluster.brokers:
        if not broker.alive():
            continue
        try:
            md = metadata(broker.address, topics)
        except grpc.RpcError:
            counts.append(0)
            continue
        counts.append(sum(p.leader >= 0 for t in md.topics for p in t.partitions))
    return counts


def wait_all_led(cluster: Cluster, topics: list[str], total: int,
                 timeout: float) -> tuple[float | None, list[int]]:
    """Seconds until every live broker shows a leader for all `total` partitions (None
    if that did not happen within timeout), and the counts last seen."""
    start = time.monotonic()
    while True:
        counts = led_counts(cluster, topics)
        if counts and min(counts) == total:
            return time.monotonic() - start, counts
        if time.monotonic() - start > timeout:
            return None, counts
        time.sleep(0.1)


def create_concurrently(bootstrap: str, names: list[str], partitions: int) -> None:
    async def run() -> None:
        async with Admin(bootstrap, request_timeout_ms=180_000) as admin:
            await asyncio.gather(*(admin.create_topic(n, partitions, 3) for n in names))

    asyncio.run(run())


class Profiler:
    """py-spy record of every broker until stopped (SIGINT makes py-spy write its file)."""

    def __init__(self, directory: Path, label: str) -> None:
        self.directory = directory
        self.label = label
        self.procs: list[subprocess.Popen[bytes]] = []

    @staticmethod
    def executable() -> str | None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        return exe if os.access(exe, os.X_OK) else None

    def start(self, cluster: Cluster) -> None:
        exe = self.executable()
        if exe is None:
            log("py-spy is not installed: no profile")
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        for i, broker in enumerate(cluster.brokers):
            for fmt, ext in (("flamegraph", "svg"), ("raw", "txt")):
                out = self.directory / f"create-{self.label}-broker{i}.{ext}"
                self.procs.append(subprocess.Popen(
                    [exe, "record", "-r", "100", "-f", fmt, "-o", str(out),
                     "--pid", str(broker.pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)  # py-spy attaches before the creation starts

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.procs:
            log(f"profiles in {self.directory}")


def one_shape(workdir: Path, shape: str, profile_dir: Path | None,
              timeout: float) -> dict[str, Any]:
    topics, partitions = SHAPES[shape]
    total = topics * partitions
    names = [f"create-{shape}-{i}" for i in range(topics)]
    file_us = file_creation_us(workdir / f"{shape}-probe")
    cluster = Cluster(workdir / shape)
    try:
        cluster.start()
        profiler = Profiler(profile_dir, shape) if profile_dir else None
        if profiler:
            profiler.start(cluster)
        t0 = time.monotonic()
        try:
            create_concurrently(cluster.bootstrap, names, partitions)
            call_s = time.monotonic() - t0
            waited, led = wait_all_led(cluster, names, total, timeout)
            led_s = None if waited is None else time.monotonic() - t0
        finally:
            if profiler:
                profiler.stop()
        log(f"{shape}: CreateTopic returned in {call_s:.2f} s; every broker shows every "
            f"leader at {_s(led_s)} (led per broker: {led})")
        result: dict[str, Any] = {
            "topics": topics, "partitions_per_topic": partitions, "partitions": total,
            "replication_factor": 3, "call_s": round(call_s, 2), "led_s": _round(led_s),
            "led_per_broker": led, "restart_serving_s": None, "restart_led_s": None,
            "file_create_us": file_us}
        if led_s is None:
            return result  # a restart would measure the unfinished creation
        cluster.stop()
        t1 = time.monotonic()
        for b in cluster.brokers:
            b.start()
        for b in cluster.brokers:
            b.wait_serving(180)
        result["restart_serving_s"] = round(time.monotonic() - t1, 2)
        waited, led = wait_all_led(cluster, names, total, timeout)
        result["restart_led_s"] = _round(None if waited is None else time.monotonic() - t1)
        log(f"{shape}: restarted, all serving in {result['restart_serving_s']:.2f} s, every "
            f"leader shown at {_s(result['restart_led_s'])} (led per broker: {led})")
        return result
    finally:
        cluster.stop()


def file_creation_us(directory: Path, dirs: int = 200, files: int = 4) -> float:
    """Microseconds per new file or directory on the disk the brokers use, just before
    the shape runs: the baseline that creation time depends on. A replica is a directory
    and a few files, and the cost of making one varies with the file system's state: on
    an ext4 without a journal (this machine's), inodes freed in the last minutes (a
    previous run's data deleted) are skipped by the allocator, and creation is several
    times slower until they age."""
    t0 = time.perf_counter()
    for d in range(dirs):
        sub = directory / str(d)
        sub.mkdir(parents=True)
        for f in range(files):
            (sub / str(f)).touch()
    return round((time.perf_counter() - t0) / (dirs * (files + 1)) * 1e6, 1)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _s(value: float | None) -> str:
    return "never (timed out)" if value is None else f"{value:.2f} s"


def create_bench(workdir: Path, shapes: list[str], profile_dir: Path | None = None,
                 timeout: float = 60.0) -> dict[str, Any]:
    return {shape: one_shape(workdir, shape, profile_dir, timeout) for shape in shapes}


def summary(results: dict[str, Any]) -> str:
    out = [f"{'partition creation, 3 brokers RF=3':<38} {'call s':>7} {'led s':>7} "
           f"{'restart s':>10} {'re-led s':>9} {'file us':>8}"]
    for shape, r in results.items():
        name = f"{r['topics']} x {r['partitions_per_topic']} partitions ({shape})"
        cells = [f"{v:.2f}" if v is not None else "-" for v in (
            r["call_s"], r["led_s"], r["restart_serving_s"], r["restart_led_s"])]
        out.append(f"{name:<38} {cells[0]:>7} {cells[1]:>7} {cells[2]:>10} {cells[3]:>9} "
                   f"{r['file_create_us']:>8.1f}"
                   + ("" if r["led_s"] is not None else
                      f"  (led per broker at the timeout: {r['led_per_broker']})"))
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="1x1000,10x100",
                    help=f"comma-separated, of {', '.join(SHAPES)}")
    ap.add_argument("--profile-dir", help="py-spy record every broker during creation")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds to wait for every leader (default 60)")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the brokers' logs and data")
    args = ap.parse_args()
    shapes = [s.strip() for s in args.shape.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        ap.error(f"unknown shape(s) {', '.join(unknown)}; choose from {', '.join(SHAPES)}")
    with bench_workdir("odradek-create-", args.keep) as workdir:
        results = create_bench(workdir, shapes,
                               Path(args.profile_dir) if args.profile_dir else None,
                               args.timeout)
    print(summary(results))
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
