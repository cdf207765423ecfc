"""How long a 3-broker cluster takes to create many partitions at RF=3 (issue #18), and to
load them again after a restart.

Two shapes, each on a fresh cluster: one topic of 1,000 partitions, and 10 topics of 100
created by 10 concurrent calls. For each it reports, as a client sees it:
  call_s     the CreateTopic call(s) returning
  led_s      from the start until every live broker's Metadata shows a leader for every
             partition (the call waits for leaders on the controller's image; the other
             brokers learn them when they apply the same commands)
then stops the three brokers and starts them again:
  serving_s  from the start of the processes until all three say SERVING (their health
             check waits for every replica to know its leader)
  reled_s    until every broker's Metadata shows a leader for every partition again

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
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_bench import Cluster, log, metadata  # noqa: E402

from odradek.client.admin import Admin  # noqa: E402

SHAPES = {"1x1000": (1, 1000), "10x100": (10, 100)}


def all_led(cluster: Cluster, topics: list[str], partitions: int) -> bool:
    """Does every live broker's Metadata show a leader for every partition?"""
    for broker in cluster.brokers:
        if not broker.alive():
            continue
        try:
            md = metadata(broker.address, topics)
        except grpc.RpcError:
            return False
        if len(md.topics) != len(topics):
            return False
        for t in md.topics:
            if len(t.partitions) != partitions or any(p.leader < 0 for p in t.partitions):
                return False
    return True


def wait_all_led(cluster: Cluster, topics: list[str], partitions: int,
                 timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not all_led(cluster, topics, partitions):
        if time.monotonic() > deadline:
            raise SystemExit(f"not every partition had a leader within {timeout:.0f} s")
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


def one_shape(workdir: Path, shape: str, profile_dir: Path | None) -> dict[str, Any]:
    topics, partitions = SHAPES[shape]
    names = [f"create-{shape}-{i}" for i in range(topics)]
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
            wait_all_led(cluster, names, partitions)
            led_s = time.monotonic() - t0
        finally:
            if profiler:
                profiler.stop()
        log(f"{shape}: CreateTopic returned in {call_s:.2f} s, every broker shows every "
            f"leader at {led_s:.2f} s")
        cluster.stop()
        t1 = time.monotonic()
        for b in cluster.brokers:
            b.start()
        for b in cluster.brokers:
            b.wait_serving(180)
        serving_s = time.monotonic() - t1
        wait_all_led(cluster, names, partitions)
        reled_s = time.monotonic() - t1
        log(f"{shape}: restarted, all serving in {serving_s:.2f} s, every leader shown at "
            f"{reled_s:.2f} s")
    finally:
        cluster.stop()
    return {"topics": topics, "partitions_per_topic": partitions,
            "partitions": topics * partitions, "replication_factor": 3,
            "call_s": round(call_s, 2), "led_s": round(led_s, 2),
            "restart_serving_s": round(serving_s, 2), "restart_led_s": round(reled_s, 2)}


def create_bench(workdir: Path, shapes: list[str],
                 profile_dir: Path | None = None) -> dict[str, Any]:
    return {shape: one_shape(workdir, shape, profile_dir) for shape in shapes}


def summary(results: dict[str, Any]) -> str:
    out = [f"{'partition creation, 3 brokers RF=3':<38} {'call s':>7} {'led s':>7} "
           f"{'restart s':>10} {'re-led s':>9}"]
    for shape, r in results.items():
        name = f"{r['topics']} x {r['partitions_per_topic']} partitions ({shape})"
        out.append(f"{name:<38} {r['call_s']:>7.2f} {r['led_s']:>7.2f} "
                   f"{r['restart_serving_s']:>10.2f} {r['restart_led_s']:>9.2f}")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="1x1000,10x100",
                    help=f"comma-separated, of {', '.join(SHAPES)}")
    ap.add_argument("--profile-dir", help="py-spy record every broker during creation")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the brokers' logs and data")
    args = ap.parse_args()
    shapes = [s.strip() for s in args.shape.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        ap.error(f"unknown shape(s) {', '.join(unknown)}; choose from {', '.join(SHAPES)}")
    workdir = Path(tempfile.mkdtemp(prefix="odradek-create-"))
    try:
        results = create_bench(workdir, shapes,
                               Path(args.profile_dir) if args.profile_dir else None)
    except BaseException:
        log(f"the bench failed: brokers' logs and data are kept in {workdir}")
        raise
    if args.keep:
        log(f"brokers' logs and data are in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(summary(results))
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
