"""`make bench`: measures the disk with dd, then, each on brokers it starts itself:

  single    one broker: acks=quorum produce of 1 KB and 100 B records, consume of 1 KB
  cluster   3 broker processes on loopback, topics with RF=3 over several partitions:
            acks=quorum produce of 1 KB and 100 B records at full throttle, 1 KB records
            rate-limited to --rate-mb MB/s (the latency the design's target is about),
            and consume
  failover  3 brokers: kill -9 of a partition leader under a continuous acks=quorum
            writer; time from the kill to the first ack from the new leader (--tries)
  idle      3 brokers hosting --idle-topics x --idle-partitions partitions at RF=3:
            CPU% (of one core) of each broker while nothing happens
  create    3 brokers, fresh for each shape: 1 topic of 1,000 partitions and 10 of 100 at
            RF=3 created, until every broker's metadata shows every leader, then the
            restart of all three (bench/create_bench.py)
  jetstream NATS JetStream, 3 clustered nats-server processes, a stream with R3: the
            cluster part's produce and consume, same record counts (bench/jetstream.py),
            and Odradek's figures as a multiple of JetStream's

It prints a summary table at the end, and with --json-out writes the same figures as JSON.

    python bench/run.py [--quick] [--only NAME[,NAME]] [--json-out FILE]

With --bootstrap the single-broker part benchmarks that running cluster instead.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster_bench import (  # noqa: E402
    Broker,
    Cluster,
    bench_workdir,
    child_env,
    cli,
    create_topics,
    failover_bench,
    free_ports,
    idle_cpu_bench,
    leader_counts,
    log,
    wait_balanced,
)
from create_bench import create_bench  # noqa: E402
from create_bench import summary as create_summary  # noqa: E402
from jetstream import jetstream_bench  # noqa: E402

PARTS = ("dd", "single", "cluster", "failover", "idle", "create", "jetstream")
MB = 1_000_000


def dd_write_speed(directory: Path, mib: int = 256) -> float:
    """MB/s (10^6 bytes) of a sequential write ending in fdatasync, as dd measures it."""
    target = directory / "dd.bin"
    r = subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={mib}",
                        "conv=fdatasync"], capture_output=True, text=True)
    target.unlink(missing_ok=True)
    if r.returncode != 0:
        raise SystemExit(f"dd failed: {r.stderr.strip()}")
    m = re.search(r"(\d+) bytes.*copied, ([\d.,]+) s", r.stderr)
    if not m:
        raise SystemExit(f"cannot parse dd's output: {r.stderr.strip()}")
    nbytes = int(m.group(1))
    seconds = float(m.group(2).replace(",", "."))
    return nbytes / 1e6 / seconds


def run_bench(*args: str) -> dict[str, Any]:
    log(f"$ odradek bench {' '.join(args)}")
    r = subprocess.run(cli("bench", *args, "--json"), env=child_env(), stdout=subprocess.PIPE)
    if r.returncode != 0:
        raise SystemExit(f"odradek bench {' '.join(args)} failed with code {r.returncode}")
    lines = [ln for ln in r.stdout.decode().splitlines() if ln.startswith("{")]
    return dict(json.loads(lines[-1]))


def single_broker(args: argparse.Namespace, workdir: Path, run_id: str) -> dict[str, Any]:
    broker: Broker | None = None
    try:
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            broker = Broker(workdir / "single", free_ports(1)[0], ["--log-level", "WARNING"])
            broker.start()
            broker.wait_serving()
            bootstrap = broker.address
        common = ["--bootstrap", bootstrap, "--partitions", str(args.partitions),
                  "--acks", args.acks]
        big = run_bench("produce", *common, "--topic", f"bench-1k-{run_id}",
                        "--records", str(args.records), "--record-size", "1024")
        consume = run_bench("consume", "--bootstrap", bootstrap,
                            "--topic", f"bench-1k-{run_id}", "--records", str(args.records))
        small = run_bench("produce", *common, "--topic", f"bench-100b-{run_id}",
                          "--records", str(args.small_records), "--record-size", "100")
    finally:
        if broker is not None:
            broker.stop()
    return {"partitions": args.partitions, "acks": args.acks,
            "produce_1k": big, "consume_1k": consume, "produce_100b": small}


def three_brokers(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    p = args.cluster_partitions
    topics = {"1k": "c-1k", "100b": "c-100b", "rate": "c-rate-1k"}
    rate = round(args.rate_mb * MB / 1024)
    rate_records = int(rate * args.rate_seconds)
    with Cluster(workdir / "cluster") as cluster:
        bootstrap = cluster.bootstrap
        create_topics(bootstrap, list(topics.values()), p, 3)
        balanced = wait_balanced(cluster, list(topics.values()), 20)
        counts, _, _ = leader_counts(cluster, list(topics.values()))
        log(f"3-broker cluster at {bootstrap}; {p} partitions per topic, leaders per broker "
            f"{counts}{'' if balanced else ' (not all on their preferred replica)'}")
        common = ["--bootstrap", bootstrap, "--partitions", str(p), "--replication-factor",
                  "3", "--acks", "quorum"]
        big = run_bench("produce", *common, "--topic", topics["1k"],
                        "--records", str(args.cluster_records), "--record-size", "1024")
        consume = run_bench("consume", "--bootstrap", bootstrap, "--topic", topics["1k"],
                            "--records", str(args.cluster_records))
        small = run_bench("produce", *common, "--topic", topics["100b"],
                          "--records", str(args.cluster_small_records), "--record-size", "100")
        limited = run_bench("produce", *common, "--topic", topics["rate"],
                            "--records", str(rate_records), "--record-size", "1024",
                            "--rate", str(rate))
        alive = [b.alive() for b in cluster.brokers]
    return {"brokers": 3, "replication_factor": 3, "partitions": p, "acks": "quorum",
            "leaders_per_broker": counts, "produce_1k": big, "consume_1k": consume,
            "produce_100b": small, "produce_1k_rate_limited": limited,
            "target_rate_records_per_s": rate, "brokers_alive_after": alive}


def py_spy_profile(directory: Path, seconds: int) -> Any:
    """A callback for idle_cpu_bench: py-spy record of broker 0 (when py-spy is there)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.access(exe, os.X_OK):
        log("py-spy is not installed: no profile")
        return None

    def profile(cluster: Cluster) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        broker = cluster.brokers[0]
        for fmt, ext in (("flamegraph", "svg"), ("raw", "txt")):
            out = directory / f"idle-broker0.{ext}"
            log(f"py-spy record -d {seconds} --pid {broker.pid} -> {out}")
            subprocess.run([exe, "record", "-d", str(seconds), "-r", "50", "-f", fmt,
                            "-o", str(out), "--pid", str(broker.pid)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return profile


def _lat(result: dict[str, Any]) -> str:
    lat = result.get("latency_ms")
    if not lat:
        return f"{'-':>8} {'-':>8} {'-':>8}"
    return f"{lat['p50']:>8.2f} {lat['p95']:>8.2f} {lat['p99']:>8.2f}"


def summary(results: dict[str, Any]) -> str:
    dd = results.get("dd_mb_per_s")
    out = [f"{'benchmark':<34} {'records/s':>11} {'MB/s':>8} {'vs dd':>6} "
           f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"]
    if dd:
        out.append(f"{'dd write + fdatasync':<34} {'-':>11} {dd:>8.1f} {'1.00':>6} "
                   f"{'-':>8} {'-':>8} {'-':>8}")
    rows = []
    if "single" in results:
        s = results["single"]
        rows += [("1 broker: produce 1 KB", s["produce_1k"]),
                 ("1 broker: consume 1 KB", s["consume_1k"]),
                 ("1 broker: produce 100 B", s["produce_100b"])]
    if "cluster" in results:
        c = results["cluster"]
        rows += [("3 brokers RF=3: produce 1 KB", c["produce_1k"]),
                 ("3 brokers RF=3: consume 1 KB", c["consume_1k"]),
                 ("3 brokers RF=3: produce 100 B", c["produce_100b"]),
                 (f"3 brokers RF=3: 1 KB at {c['target_rate_records_per_s']}/s",
                  c["produce_1k_rate_limited"])]
    if "jetstream" in results:
        j = results["jetstream"]
        rows += [("JetStream R3: produce 1 KB", j["produce_1k"]),
                 ("JetStream R3: consume 1 KB", j["consume_1k"]),
                 ("JetStream R3: produce 100 B", j["produce_100b"])]
    if not rows and not dd:
        out = []
    for name, r in rows:
        ratio = f"{r['mb_per_s'] / dd:.2f}" if dd else "-"
        out.append(f"{name:<34} {r['records_per_s']:>11,.0f} {r['mb_per_s']:>8.1f} "
                   f"{ratio:>6} {_lat(r)}")
    notes = ["(MB = 10^6 bytes; acks=quorum; produce latency is send to delivery, "
             "linger 5 ms)"]
    if "single" in results:
        notes.append(f"(1 broker: {results['single']['partitions']} partition(s))")
    if "cluster" in results:
        c = results["cluster"]
        notes.append(f"(3 brokers: {c['partitions']} partitions per topic, leaders of the "
                     f"3 topics' partitions per broker {c['leaders_per_broker']})")
    if "jetstream" in results:
        j = results["jetstream"]
        notes.append(f"(JetStream: {j['version']}, file storage, nats-py with "
                     f"{j['window']} publishes awaiting acks)")
        if "cluster" in results:
            c = results["cluster"]
            ratios = ", ".join(
                f"{name} {c[key]['records_per_s'] / j[key]['records_per_s']:.2f}x"
                for name, key in (("produce 1 KB", "produce_1k"),
                                  ("produce 100 B", "produce_100b"),
                                  ("consume 1 KB", "consume_1k")))
            notes.append(f"(Odradek 3 brokers RF=3 / JetStream R3, records/s: {ratios})")
    if rows:
        out += notes
    if "failover" in results:
        f = results["failover"]
        out.append(f"\nfailover after kill -9 of the leader ({f['tries']} tries): median "
                   f"{f['median_s'] * 1000:.0f} ms, min {f['min_s'] * 1000:.0f} ms, max "
                   f"{f['max_s'] * 1000:.0f} ms  (kill to first acks=quorum ack from the "
                   "new leader)")
    if "idle" in results:
        i = results["idle"]
        cpu = ", ".join(f"{c:.1f}%" for c in i["cpu_percent_per_broker"])
        base = ", ".join(f"{c:.1f}%" for c in i["cpu_percent_no_partitions"])
        out.append(f"\nidle CPU with {i['partitions']} partitions at RF=3 "
                   f"({i['topics']} topics), over {i['window_s']:.0f} s: {cpu} "
                   f"(percent of one core, brokers 0..2; with no partitions: {base})")
    if "create" in results:
        out.append("\n" + create_summary(results["create"]))
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="fewer records, 3 failover tries, 300 idle partitions, short windows")
    ap.add_argument("--only", action="append", default=[], metavar="NAME[,NAME]",
                    help=f"run only these parts: {', '.join(PARTS)} (repeatable)")
    ap.add_argument("--records", type=int, help="1 KB records, 1 broker (default 200000)")
    ap.add_argument("--small-records", type=int, help="100 B records, 1 broker (500000)")
    ap.add_argument("--partitions", type=int, default=1, help="partitions, 1 broker")
    ap.add_argument("--acks", default="quorum", help="acks, 1 broker")
    ap.add_argument("--bootstrap", help="single part: benchmark this cluster instead")
    ap.add_argument("--cluster-records", type=int, help="1 KB records, 3 brokers (200000)")
    ap.add_argument("--cluster-small-records", type=int, help="100 B records, 3 brokers "
                    "(500000)")
    ap.add_argument("--cluster-partitions", type=int, default=6)
    ap.add_argument("--rate-mb", type=float, default=5.0,
                    help="MB/s of 1 KB records of the rate-limited run (default 5)")
    ap.add_argument("--rate-seconds", type=float, help="length of that run (default 20 s)")
    ap.add_argument("--tries", type=int, help="failover tries (default 10)")
    ap.add_argument("--idle-topics", type=int, help="default 10")
    ap.add_argument("--idle-partitions", type=int, help="per topic, default 100")
    ap.add_argument("--idle-window", type=float, help="seconds of CPU sampling (default 20)")
    ap.add_argument("--idle-settle", type=float, help="seconds to wait after the leaders "
                    "settled before sampling (default 10)")
    ap.add_argument("--profile-dir", help="also py-spy record broker 0 while idle, into DIR")
    ap.add_argument("--dd-mib", type=int, default=256)
    ap.add_argument("--json-out", help="write all results to this file")
    ap.add_argument("--keep", action="store_true", help="keep the brokers' logs and data")
    args = ap.parse_args()

    quick = args.quick

    def pick(value: Any, full: Any, short: Any) -> Any:
        return value if value is not None else (short if quick else full)

    args.records = pick(args.records, 200_000, 30_000)
    args.small_records = pick(args.small_records, 500_000, 50_000)
    args.cluster_records = pick(args.cluster_records, 200_000, 20_000)
    args.cluster_small_records = pick(args.cluster_small_records, 500_000, 30_000)
    args.rate_seconds = pick(args.rate_seconds, 20.0, 5.0)
    args.tries = pick(args.tries, 10, 3)
    args.idle_topics = pick(args.idle_topics, 10, 3)
    args.idle_partitions = pick(args.idle_partitions, 100, 100)
    args.idle_window = pick(args.idle_window, 20.0, 6.0)
    args.idle_settle = pick(args.idle_settle, 10.0, 3.0)
    only = {n.strip() for item in args.only for n in item.split(",") if n.strip()}
    unknown = only - set(PARTS)
    if unknown:
        ap.error(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    parts = [p for p in PARTS if not only or p in only]

    results: dict[str, Any] = {"quick": quick, "parts": parts}
    started = time.monotonic()
    with bench_workdir("odradek-bench-", args.keep) as workdir:
        if "dd" in parts:
            log(f"measuring the disk: dd {args.dd_mib} MiB with fdatasync in {workdir} ...")
            results["dd_mb_per_s"] = round(dd_write_speed(workdir, args.dd_mib), 1)
        run_id = str(int(time.time()))
        if "single" in parts:
            log("== 1 broker ==")
            results["single"] = single_broker(args, workdir, run_id)
        if "cluster" in parts:
            log("== 3 brokers: throughput and latency ==")
            results["cluster"] = three_brokers(args, workdir)
        if "failover" in parts:
            log(f"== 3 brokers: failover after kill -9, {args.tries} tries ==")
            results["failover"] = failover_bench(workdir, args.tries)
        if "idle" in parts:
            log(f"== 3 brokers: idle CPU, {args.idle_topics} x {args.idle_partitions} "
                "partitions ==")
            profile = (py_spy_profile(Path(args.profile_dir), 10) if args.profile_dir
                       else None)
            results["idle"] = idle_cpu_bench(workdir, args.idle_topics, args.idle_partitions,
                                             args.idle_settle, args.idle_window, profile)
        if "create" in parts:
            log("== 3 brokers: creating 1 x 1000 and 10 x 100 partitions ==")
            results["create"] = create_bench(workdir / "create", ["1x1000", "10x100"])
        if "jetstream" in parts:
            log("== NATS JetStream, 3 servers, R3 ==")
            if shutil.which("nats-server") is None:
                log("nats-server is not installed (apt-get install nats-server): skipped")
            else:
                results["jetstream"] = jetstream_bench(workdir / "jetstream",
                                                       args.cluster_records,
                                                       args.cluster_small_records)
    results["elapsed_s"] = round(time.monotonic() - started, 1)

    print()
    print(summary(results))
    print(f"\n(bench took {results['elapsed_s']:.0f} s)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
