"""odradek.streams throughput: records/s through a stateless pass-through, a stateful
aggregate (a sum per key in an LMDB store with its changelog) and a stream-table join,
each on the same pre-filled topic in the same run, the stateful ones also as a ratio of
the pass-through's figure (median of --tries, the three interleaved).

    PYTHONPATH=. python bench/streams_bench.py [--records 100000] [--keys 1000] [--tries 3]

One broker process on loopback (RF=1, so that the figure is the stream job's more than
the replication's); one app instance; 3 partitions. The time runs from the moment every
task is made (the consumer group has assigned them) to the commit of the offsets of the
last input record, so it includes sending every output and changelog record and waiting
for their acknowledgements (at-least-once)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from odradek.client import Admin, Producer  # noqa: E402
from odradek.streams import JSON, STR, App  # noqa: E402
from tests.brokers import BrokerProcess  # noqa: E402

PARTITIONS = 3


def passthrough(app: App) -> None:
    app.stream("events").to("out-pass")


def aggregate(app: App) -> None:
    (app.stream("events", STR, JSON).group_by_key()
        .aggregate("sums", lambda: 0, lambda _k, v, total: total + v["n"]).to("out-agg"))


def join(app: App) -> None:
    customers = app.table("customers", STR, JSON)
    (app.stream("events", STR, JSON)
        .join(customers, lambda e, c: {**e, "tier": c["tier"]}).to("out-join", STR, JSON))


SCENARIOS: dict[str, tuple[Callable[[App], None], bool]] = {
    "pass-through": (passthrough, False), "aggregate": (aggregate, False),
    "stream-table join": (join, True)}


async def fill(bootstrap: str, records: int, keys: int) -> None:
    async with Admin(bootstrap) as admin:
        await admin.create_topic("events", PARTITIONS)
        await admin.create_topic("customers", PARTITIONS, configs={"cleanup.policy": "compact"})
    async with Producer(bootstrap, linger_ms=5, batch_size=1 << 18) as producer:
        for k in range(keys):
            await producer.send("customers", JSON.serialize({"tier": k % 3}), key=f"k{k}")
        for i in range(records):
            await producer.send("events", JSON.serialize({"n": i}), key=f"k{i % keys}")
        await producer.flush()


async def run_once(bootstrap: str, name: str, run_id: int, records: int, keys: int) -> float:
    build, with_table = SCENARIOS[name]
    target = records + (keys if with_table else 0)  # the table's records are input too
    with tempfile.TemporaryDirectory() as state:
        app = App(bootstrap, f"bench-{run_id}", state_dir=state, max_poll_records=2000)
        build(app)
        await app.start()
        try:
            runtime = app.runtime
            assert runtime is not None
            expected = PARTITIONS * len(app.topology.groups())
            deadline = time.monotonic() + 120
            while len(runtime.tasks) < expected:
                assert time.monotonic() < deadline, "tasks not assigned"
                await asyncio.sleep(0.005)
            start = time.perf_counter()
            while runtime.committed < target:
                assert time.monotonic() < deadline, f"{name}: {runtime.committed}/{target}"
                await asyncio.sleep(0.005)
            return target / (time.perf_counter() - start)
        finally:
            await app.stop()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as data:
        broker = BrokerProcess(Path(data) / "b0").start()
        try:
            await fill(broker.address, args.records, args.keys)
            rates: dict[str, list[float]] = {name: [] for name in SCENARIOS}
            run_id = 0
            for _ in range(args.tries):
                for name in SCENARIOS:
                    run_id += 1
                    rates[name].append(await run_once(broker.address, name, run_id,
                                                      args.records, args.keys))
        finally:
            broker.stop()
    base = statistics.median(rates["pass-through"])
    print(f"{args.records} records, {args.keys} keys, {PARTITIONS} partitions, "
          f"median of {args.tries}:")
    for name, got in rates.items():
        rate = statistics.median(got)
        runs = ", ".join(f"{r:,.0f}" for r in got)
        print(f"  {name:18} {rate:10,.0f} records/s  ({rate / base:.2f} x pass-through; "
              f"runs {runs})")


def parse(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--tries", type=int, default=3)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
