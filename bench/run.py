"""`make bench`: start a broker, measure the disk with dd, run the produce and consume
benchmarks for 1 KB (and 100 B) records, and print a summary with ratios against dd.

    python bench/run.py [--records N] [--partitions P] [--json-out FILE] [--bootstrap H:P]

With --bootstrap it benchmarks a running cluster instead of starting a broker.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "odradek.cli.main", *args]


def wait_ready(bootstrap: str, proc: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the broker exited with code {proc.returncode} before it was ready")
        r = subprocess.run(cli("topic", "list", "--bootstrap", bootstrap), env=env(),
                           capture_output=True)
        if r.returncode == 0:
            return
        time.sleep(0.3)
    raise SystemExit(f"the broker at {bootstrap} was not ready within {timeout:.0f} s")


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
    r = subprocess.run(cli("bench", *args, "--json"), env=env(), stdout=subprocess.PIPE)
    if r.returncode != 0:
        raise SystemExit(f"odradek bench {' '.join(args)} failed with code {r.returncode}")
    lines = [ln for ln in r.stdout.decode().splitlines() if ln.startswith("{")]
    return dict(json.loads(lines[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000, help="1 KB records to produce")
    ap.add_argument("--small-records", type=int, default=500_000, help="100 B records")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--acks", default="quorum")
    ap.add_argument("--bootstrap", help="benchmark this cluster instead of starting a broker")
    ap.add_argument("--dd-mib", type=int, default=256)
    ap.add_argument("--json-out", help="write all results to this file")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="odradek-bench-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            port = free_port()
            bootstrap = f"127.0.0.1:{port}"
            log = open(workdir / "broker.log", "wb")  # noqa: SIM115 - closed with the process
            proc = subprocess.Popen(
                cli("broker", "--port", str(port), "--data-dir", str(workdir / "data"),
                    "--log-level", "WARNING"),
                env=env(), stdout=log, stderr=subprocess.STDOUT)
        wait_ready(bootstrap, proc)

        print(f"measuring the disk: dd {args.dd_mib} MiB with fdatasync in {workdir} ...",
              file=sys.stderr)
        dd = dd_write_speed(workdir, args.dd_mib)

        common = ["--bootstrap", bootstrap, "--partitions", str(args.partitions),
                  "--acks", args.acks]
        run_id = str(int(time.time()))
        big = run_bench("produce", *common, "--topic", f"bench-1k-{run_id}",
                        "--records", str(args.records), "--record-size", "1024")
        consume = run_bench("consume", "--bootstrap", bootstrap,
                            "--topic", f"bench-1k-{run_id}", "--records", str(args.records))
        small = run_bench("produce", *common, "--topic", f"bench-100b-{run_id}",
                          "--records", str(args.small_records), "--record-size", "100")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    rows = [
        ("dd write + fdatasync", None, dd, None),
        ("produce 1 KB", big["records_per_s"], big["mb_per_s"], big["latency_ms"]),
        ("consume 1 KB", consume["records_per_s"], consume["mb_per_s"], None),
        ("produce 100 B", small["records_per_s"], small["mb_per_s"], small["latency_ms"]),
    ]
    print()
    print(f"{'benchmark':<22} {'records/s':>12} {'MB/s':>9} {'vs dd':>7} "
          f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name, rps, mbps, lat in rows:
        rps_s = f"{rps:,.0f}" if rps is not None else "-"
        ratio = f"{mbps / dd:.2f}" if dd else "-"
        lat_s = (f"{lat['p50']:>8.2f} {lat['p95']:>8.2f} {lat['p99']:>8.2f}" if lat
                 else f"{'-':>8} {'-':>8} {'-':>8}")
        print(f"{name:<22} {rps_s:>12} {mbps:>9.1f} {ratio:>7} {lat_s}")
    print(f"\n(MB = 10^6 bytes; partitions={args.partitions}, acks={args.acks}; "
          "produce latency is send to delivery)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {"dd_mb_per_s": round(dd, 1), "produce_1k": big, "consume_1k": consume,
             "produce_100b": small}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
