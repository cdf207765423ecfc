"""odradek.streams state recovery: the time to restore a store from its changelog (as
seconds per GB of changelog), and the failover time when the instance running a task
leaves, with and without a standby replica on the instance that takes over.

    PYTHONPATH=. python bench/streams_failover.py [--records 100000] [--value-bytes 400]

One broker process on loopback (RF=1); one input topic of --partitions partitions read as
a table (each record a store write and a changelog record, distinct keys, so the
changelog holds every record). Restore: a fresh instance with an empty state directory
replays every changelog partition (Runtime.restore_seconds, the replay alone, not the
group join). Failover: instance A runs every task, then instance B joins and
takes part of them (with standby_replicas=1 it keeps warm copies of A's); A stops
cleanly (it leaves the group at once) and the time runs from then until B has every task
open and restored. After a crash
(kill -9) the group's session timeout (6 s for streams) comes on top of both figures.
All instances share this process and the machine's two cores with the broker."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from odradek.client import Admin, Producer  # noqa: E402
from odradek.streams import BYTES, STR, App  # noqa: E402
from tests.brokers import BrokerProcess  # noqa: E402


def build(bootstrap: str, app_id: str, state: Path, standbys: int, name: str) -> App:
    app = App(bootstrap, app_id, state_dir=state / name, standby_replicas=standbys,
              instance_id=name, max_poll_records=2000)
    app.table("fo-input", STR, BYTES, name="rows")
    return app


async def wait_for(what: str, check: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.005)


async def fill(bootstrap: str, records: int, value_bytes: int, partitions: int) -> None:
    async with Admin(bootstrap) as admin:
        await admin.create_topic("fo-input", partitions, configs={"cleanup.policy": "compact"})
    value = b"v" * value_bytes
    async with Producer(bootstrap, linger_ms=5, batch_size=1 << 18) as producer:
        for i in range(records):
            await producer.send("fo-input", value, key=f"key-{i:09d}")
        await producer.flush()


def processed(app: App, records: int) -> bool:
    runtime = app.runtime
    return runtime is not None and runtime.committed >= records


def all_open(app: App, tasks: int) -> bool:
    runtime = app.runtime
    return runtime is not None and len(runtime.tasks) == tasks and not runtime.restoring


async def failover(bootstrap: str, app_id: str, state: Path, records: int, partitions: int,
                   standbys: int) -> tuple[float, int]:
    """Seconds from A's stop to B running every task, and the records B replayed."""
    a = build(bootstrap, app_id, state, standbys, "a")
    await a.start()
    await wait_for("A processed the input", lambda: processed(a, records))
    b = build(bootstrap, app_id, state, standbys, "b")
    await b.start()
    try:
        assert b.runtime is not None and a.runtime is not None
        runtimes = (a.runtime, b.runtime)
        await wait_for("the tasks spread over A and B", lambda: b.runtime is not None and all(
            r.tasks and not r.restoring for r in runtimes)
            and sum(len(r.tasks) for r in runtimes) == partitions)
        if standbys:
            runtime = b.runtime

            async def warm() -> bool:
                # B runs part of the tasks itself once it joins; it keeps standbys of the
                # others, the ones that move when A goes
                lags = await runtime.standbys.lags()
                elsewhere = {(0, p) for p in range(partitions)} - set(runtime.tasks)
                return bool(elsewhere) and set(lags) == elsewhere and not any(lags.values())
            deadline = time.monotonic() + 300
            while not await warm():
                assert time.monotonic() < deadline, "standbys not warm"
                await asyncio.sleep(0.05)
        before = b.runtime.restored
        start = time.perf_counter()
        await a.stop()
        await wait_for("B took over", lambda: all_open(b, partitions))
        return time.perf_counter() - start, b.runtime.restored - before
    finally:
        await a.stop()
        await b.stop()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as data:
        broker = BrokerProcess(Path(data) / "b0").start()
        try:
            await fill(broker.address, args.records, args.value_bytes, args.partitions)
            state = Path(data) / "state"
            first = build(broker.address, "fo-restore", state, 0, "first")
            async with first:
                await wait_for("the input processed", lambda: processed(first, args.records))
            fresh = build(broker.address, "fo-restore", state, 0, "fresh")
            async with fresh:
                await wait_for("restored", lambda: all_open(fresh, args.partitions))
                assert fresh.runtime is not None
                seconds, replayed = fresh.runtime.restore_seconds, fresh.runtime.restored
            # the changelog's bytes: per record its value, its 13-byte key and about 20
            # bytes of record framing in a batch
            size = replayed * (args.value_bytes + 13 + 20)
            print(f"restore: {replayed:,} changelog records (~{size / 1e6:.0f} MB) in "
                  f"{seconds:.2f} s: {replayed / seconds:,.0f} records/s, "
                  f"{size / 1e6 / seconds:.1f} MB/s, {seconds * 1e9 / size:.0f} s per GB")
            for standbys in (0, 1):
                took, replayed = await failover(broker.address, f"fo-{standbys}", state,
                                                args.records, args.partitions, standbys)
                print(f"failover {'with' if standbys else 'without'} a standby: {took:.2f} s "
                      f"(B replayed {replayed:,} changelog records)")
        finally:
            broker.stop()


def parse(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--value-bytes", type=int, default=400)
    parser.add_argument("--partitions", type=int, default=2)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
