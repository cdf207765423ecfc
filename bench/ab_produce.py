"""A/B of a change on the 3-broker produce figures: brokers from each source tree in turn
(e.g. a `git worktree` of main and this checkout), the client from this checkout, rounds
alternating so that the machine's drift falls on both. Prints records/s, MB/s, p99 and
each broker's CPU per record (utime + stime over the run) for 1 KB and 100 B records.

    git worktree add /tmp/main main
    .venv/bin/python bench/ab_produce.py /tmp/main . --rounds 2
    .venv/bin/python bench/ab_produce.py ".|ODRADEK_MALLOC_TUNING=off" .

A tree may carry environment settings for its brokers after a `|` (NAME=VALUE,...)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parents[1]


def cluster_bench_of(tree: Path) -> ModuleType:
    """bench/cluster_bench.py of the tree, with that tree's odradek for its brokers."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("bench", "odradek")]:
        del sys.modules[name]
    sys.path.insert(0, str(tree))
    try:
        module = importlib.import_module("bench.cluster_bench")
    finally:
        sys.path.remove(str(tree))
    assert Path(module.ROOT) == tree, f"{module.ROOT} is not {tree}"
    return module


def produce(bootstrap: str, topic: str, size: int, records: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "odradek.cli.main", "bench", "produce", "--bootstrap",
         bootstrap, "--topic", topic, "--partitions", "6", "--replication-factor", "3",
         "--records", str(records), "--record-size", str(size), "--json", "--no-progress"],
        cwd=HERE, env=dict(os.environ, PYTHONPATH=str(HERE)), stdout=subprocess.PIPE,
        check=True, timeout=900)
    return dict(json.loads(out.stdout.decode().strip().splitlines()[-1]))


def run_tree(spec: str, records: int) -> None:
    tree, _, settings = spec.partition("|")
    saved = dict(os.environ)
    os.environ.update(dict(kv.split("=", 1) for kv in settings.split(",") if kv))
    try:
        cb = cluster_bench_of(Path(tree).resolve())
        with tempfile.TemporaryDirectory() as d, cb.Cluster(Path(d) / "c") as cluster:
            cb.create_topics(cluster.bootstrap, ["ab-1k", "ab-100b"], 6, 3)
            cb.wait_balanced(cluster, ["ab-1k", "ab-100b"], 20)
            for topic, size, n in (("ab-1k", 1024, records // 3), ("ab-100b", 100, records)):
                before = [b.cpu_seconds() for b in cluster.brokers]
                r = produce(cluster.bootstrap, topic, size, n)
                cpu = [b.cpu_seconds() - x for b, x in zip(cluster.brokers, before, strict=True)]
                latency = r["latency_ms"]
                assert isinstance(latency, dict)
                print(f"{spec} {size} B: {r['records_per_s']:.0f} records/s, "
                      f"{r['mb_per_s']} MB/s, p99 {latency['p99']} ms; broker CPU µs/record "
                      + " ".join(f"{c / n * 1e6:.1f}" for c in cpu), flush=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trees", nargs="+", help="source trees, each optionally |NAME=VALUE,...")
    ap.add_argument("--records", type=int, default=300_000, help="100 B records (1 KB: a third)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    for _ in range(args.rounds):
        for spec in args.trees:
            run_tree(spec, args.records)


if __name__ == "__main__":
    main()
