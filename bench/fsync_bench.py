"""What fsyncs on the event loop cost the produce latency of other partitions.

Runs a 3-broker cluster twice in one run, with the partition fsyncs on the event loop
(`odradek broker --fsync-on-event-loop`, as before) and in the broker's fsync thread (the
default). Each time: a durable topic (flush.messages=1: every write fsynced on a majority
before it is acknowledged) takes 1 KB records at --rate-mb MB/s with acks=quorum, while a
second durable, compacted topic takes keyed writes at full speed from another process
and is compacted every second. Prints the produce latency (p50, p99, max) of the
rate-limited writer in each mode and their ratio.

    python bench/fsync_bench.py [--rate-mb 5] [--seconds 20] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster_bench import Cluster, child_env, cli, log  # noqa: E402

from odradek.client import Admin, Producer  # noqa: E402

MB = 1_000_000
MEASURED, NOISY = "fsync-measured", "fsync-compacted"
DURABLE = {"flush.messages": "1"}
COMPACTED = {**DURABLE, "cleanup.policy": "compact", "segment.bytes": str(1 << 20),
             "min.cleanable.dirty.ratio": "0.01"}
MODES = {"event loop": ("--fsync-on-event-loop",), "fsync thread": ()}


async def create(bootstrap: str, partitions: int) -> None:
    async with Admin(bootstrap, request_timeout_ms=60_000) as admin:
        await admin.create_topic(MEASURED, partitions, 3, DURABLE)
        await admin.create_topic(NOISY, 1, 3, COMPACTED)


async def keyed_writer(bootstrap: str) -> None:
    """Until killed: 1 KB values over 200 keys, so compaction always finds work."""
    value = b"v" * 1000
    async with Producer(bootstrap, acks="quorum", linger_ms=5) as producer:
        n = 0
        while True:
            await producer.send(NOISY, value, key=b"key-%d" % (n % 200))
            n += 1


def one_mode(workdir: Path, flags: tuple[str, ...], args: argparse.Namespace) -> dict[str, Any]:
    extra = ("--log-cleanup-interval-ms", "1000", *flags)
    with Cluster(workdir, extra=extra) as cluster:
        bootstrap = cluster.bootstrap
        asyncio.run(create(bootstrap, args.partitions))
        noise = subprocess.Popen([sys.executable, __file__, "--writer", bootstrap],
                                 env=child_env())
        try:
            rate = round(args.rate_mb * MB / 1024)
            r = subprocess.run(cli("bench", "produce", "--bootstrap", bootstrap, "--topic",
                                   MEASURED, "--records", str(int(rate * args.seconds)),
                                   "--record-size", "1024", "--acks", "quorum",
                                   "--rate", str(rate), "--json", "--no-progress"),
                               env=child_env(), stdout=subprocess.PIPE, check=True)
        finally:
            noise.kill()
            noise.wait()
    lines = [ln for ln in r.stdout.decode().splitlines() if ln.startswith("{")]
    return dict(json.loads(lines[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate-mb", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=1, help="alternate the modes this often")
    ap.add_argument("--writer", metavar="BOOTSTRAP", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.writer:
        asyncio.run(keyed_writer(args.writer))
        return 0
    results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="odradek-fsync-bench-") as tmp:
        for rnd in range(args.rounds):
            for mode, flags in MODES.items():
                log(f"round {rnd + 1}: fsyncs on the {mode}")
                out = one_mode(Path(tmp) / f"{rnd}-{flags}", flags, args)
                results[mode].append(out["latency_ms"])
    print(f"produce latency of 1 KB records at {args.rate_mb} MB/s, acks=quorum, "
          "flush.messages=1, beside a compacted topic under keyed writes")
    print(f"{'fsyncs on the':<16} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for mode, runs in results.items():
        for lat in runs:
            print(f"{mode:<16} {lat['p50']:>8.2f} {lat['p99']:>8.2f} {lat['max']:>8.2f}")
    before, after = results["event loop"], results["fsync thread"]
    p99 = sum(r["p99"] for r in before) / sum(r["p99"] for r in after)
    print(f"p99 event loop / fsync thread: {p99:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
