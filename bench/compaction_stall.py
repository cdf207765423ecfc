"""What a compaction on one topic costs the writes of another, on one event loop.

Fills a compacted partition log (--compact-mb of keyed 1 KB records, many versions per
key), then appends 16 KB batches to a second log at --rate-mb MB/s on the event loop
while that log is compacted, twice in one run:

  inline   compact() called on the event loop, as the broker did before
  worker   compact() in the broker's Housekeeper thread (odradek/broker/housekeeping.py)

and prints the p50/p99/max latency of the appends (from when each was due to when it was
stored) in each mode, and their ratio.

    python bench/compaction_stall.py [--compact-mb 200] [--rate-mb 5]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from odradek.broker.housekeeping import Housekeeper
from odradek.broker.metrics.broker import BrokerMetrics
from odradek.records import encode_batch
from odradek.storage import LogConfig, PartitionLog

BATCH_BYTES = 16 * 1024
RECORD_BYTES = 1024


def fill(directory: Path, megabytes: int) -> PartitionLog:
    config = LogConfig.from_dict({"cleanup.policy": "compact",
                                  "segment.bytes": str(16 * 1024 * 1024),
                                  "min.cleanable.dirty.ratio": "0.01"})
    log = PartitionLog.open(directory, config)
    keys = 2000
    value = b"v" * (RECORD_BYTES - 16)
    n = 0
    for _ in range(megabytes * 1024 // 16):
        log.append(encode_batch([(int(time.time() * 1000), b"key-%d" % ((n + i) % keys), value)
                                 for i in range(16)]))
        n += 16
    log.flush()
    return log


async def timed_appends(target: PartitionLog, rate_mb: float, busy: Awaitable[object],
                        ) -> list[float]:
    """Latencies (s) of appends due every BATCH_BYTES / rate, until `busy` is done."""
    interval = BATCH_BYTES / (rate_mb * 1024 * 1024)
    batch = encode_batch([(0, None, b"x" * (RECORD_BYTES - 16))
                          for _ in range(BATCH_BYTES // RECORD_BYTES)])
    task = asyncio.ensure_future(busy)
    latencies: list[float] = []
    due = time.perf_counter()
    while not task.done() or len(latencies) < 50:
        due += interval
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        target.append(batch)
        latencies.append(time.perf_counter() - due)
    await task
    return latencies


def summary(latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    return (ordered[len(ordered) // 2] * 1000, ordered[int(len(ordered) * 0.99)] * 1000,
            ordered[-1] * 1000)


async def measure(root: Path, mode: str, args: argparse.Namespace) -> tuple[float, float, float]:
    compacted = fill(root / f"{mode}-compacted", args.compact_mb)
    target = PartitionLog.open(root / f"{mode}-target", LogConfig())
    housekeeper = Housekeeper(BrokerMetrics())
    loop = asyncio.get_running_loop()

    async def inline() -> object:
        await asyncio.sleep(0.05)
        return compacted.compact()

    async def worker() -> object:
        await asyncio.sleep(0.05)
        return await loop.run_in_executor(housekeeper._worker, compacted.compact)  # noqa: SLF001

    run: Callable[[], Awaitable[object]] = inline if mode == "inline" else worker
    latencies = await timed_appends(target, args.rate_mb, run())
    await housekeeper.stop()
    compacted.close()
    target.close()
    return summary(latencies)


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="odradek-bench-") as tmp:
        results = {mode: await measure(Path(tmp), mode, args) for mode in ("inline", "worker")}
    print(f"appends of 16 KB at {args.rate_mb} MB/s while {args.compact_mb} MB are compacted")
    print(f"{'mode':<8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for mode, (p50, p99, worst) in results.items():
        print(f"{mode:<8} {p50:8.2f} {p99:8.2f} {worst:8.1f}")
    inline, worker = results["inline"], results["worker"]
    print(f"p99 inline / worker: {inline[1] / max(worker[1], 1e-6):.1f}x; "
          f"max: {inline[2] / max(worker[2], 1e-6):.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compact-mb", type=int, default=200)
    ap.add_argument("--rate-mb", type=float, default=5.0)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
