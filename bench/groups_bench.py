"""Consumer groups on 3 broker processes (loopback): the time a group takes to settle
when a member joins and when one leaves (median of --tries), and the throughput of a
4-member group reading a pre-filled topic (4 consumer processes).

    PYTHONPATH=. python bench/groups_bench.py [--tries 7] [--records 400000] [--size 200]

Rebalance time: from the moment the joining member first polls (or the leaving member
starts its close, which commits and leaves) to the moment every member holds its final
assignment (the last on_assigned callback), all members polling every 50 ms. Crash: 4
`odradek consume --group` processes (session timeout 3 s), one killed with -9; the time
until the coordinator reports the 3 others STABLE with every partition."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from odradek.client import Admin, Consumer, Producer  # noqa: E402
from tests.brokers import ClusterProcesses  # noqa: E402

PARTITIONS = 12

WORKER = r"""
import asyncio, json, sys, time
from odradek.client import Consumer

async def main(bootstrap, topic, group):
    first = last = None
    count = size = 0
    async with Consumer(bootstrap, group_id=group, auto_offset_reset="earliest",
                        max_bytes=8 << 20) as c:
        c.subscribe([topic])
        idle = time.monotonic()
        while time.monotonic() - idle < 3:
            records = await c.poll(200)
            if records:
                now = time.time()
                first = first or now
                last = now
                count += len(records)
                size += sum(len(r.value or b"") for r in records)
                idle = time.monotonic()
            elif first is None:
                idle = time.monotonic()
    print(json.dumps({"count": count, "bytes": size, "first": first, "last": last}))

asyncio.run(main(*sys.argv[1:4]))
"""


class Member:
    def __init__(self, bootstrap: str, topic: str, group: str, name: str,
                 settled: dict[str, float]) -> None:
        self.name = name
        self.settled = settled
        self.consumer = Consumer(bootstrap, group_id=group, session_timeout_ms=6000,
                                 auto_commit_interval_ms=1000)
        self.consumer.subscribe([topic], on_assigned=self._changed, on_revoked=self._changed)
        self.task = asyncio.ensure_future(self._loop())

    def _changed(self, tps: list[object]) -> None:
        self.settled[self.name] = time.monotonic()

    async def _loop(self) -> None:
        while True:
            await self.consumer.poll(50)

    def partitions(self) -> int:
        return len(self.consumer.assignment())

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.wait([self.task], timeout=10)
        await asyncio.wait_for(self.consumer.close(), 60)


async def _balanced(members: list[Member], timeout: float = 60) -> None:
    want = {PARTITIONS // len(members), -(-PARTITIONS // len(members))}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = [m.partitions() for m in members]
        if sum(counts) == PARTITIONS and set(counts) <= want:
            await asyncio.sleep(0.5)  # nothing else moves
            if [m.partitions() for m in members] == counts:
                return
        await asyncio.sleep(0.01)
    raise TimeoutError("the group did not settle")


async def rebalances(bootstrap: str, tries: int) -> tuple[list[float], list[float]]:
    topic = "bench-rebalance"
    async with Admin(bootstrap) as admin:
        await admin.create_topic(topic, PARTITIONS, 3)
    joins, leaves = [], []
    for i in range(tries):
        settled: dict[str, float] = {}
        group = f"bench-{i}"
        members = [Member(bootstrap, topic, group, f"m{k}", settled) for k in range(3)]
        await _balanced(members)
        settled.clear()
        started = time.monotonic()
        members.append(Member(bootstrap, topic, group, "m3", settled))
        await _balanced(members)
        joins.append(max(settled.values()) - started)
        settled.clear()
        leaving = members.pop(0)
        started = time.monotonic()
        await leaving.close()
        await _balanced(members)
        leaves.append(max(t for name, t in settled.items() if name != leaving.name) - started)
        for m in members:
            await m.close()
    return joins, leaves


async def fill(bootstrap: str, topic: str, records: int, size: int) -> None:
    async with Admin(bootstrap) as admin:
        await admin.create_topic(topic, PARTITIONS, 3)
    value = b"x" * size
    async with Producer(bootstrap, linger_ms=5) as producer:
        for i in range(records):
            await producer.send(topic, value, key=str(i).encode())
        await producer.flush()


def throughput(bootstrap: str, topic: str) -> dict[str, float]:
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, bootstrap, topic, "bench-tp"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(4)]
    results = [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1])
               for p in procs]
    count = sum(r["count"] for r in results)
    size = sum(r["bytes"] for r in results)
    span = max(r["last"] for r in results if r["last"]) - \
        min(r["first"] for r in results if r["first"])
    return {"records": count, "seconds": span, "records_per_s": count / span,
            "mb_per_s": size / span / 1e6,
            "per_member": [r["count"] for r in results]}  # type: ignore[dict-item]


def crashes(bootstrap: str, tries: int) -> list[float]:
    from odradek.client import SyncAdmin
    from odradek.client.errors import OdradekError

    def stable(admin: SyncAdmin, group: str, count: int) -> bool:
        try:
            d = admin.describe_group(group)
        except OdradekError:
            return False
        owned = sum(len(a.partitions) for m in d.members for a in m.assigned)
        return d.state == "STABLE" and len(d.members) == count and owned == PARTITIONS

    def wait(admin: SyncAdmin, group: str, count: int) -> None:
        deadline = time.monotonic() + 60
        while not stable(admin, group, count):
            if time.monotonic() > deadline:
                raise TimeoutError("the group did not settle")
            time.sleep(0.02)

    times = []
    with SyncAdmin(bootstrap) as admin:
        admin.create_topic("bench-crash", PARTITIONS, 3)
        for i in range(tries):
            group = f"bench-crash-{i}"
            procs = [subprocess.Popen(
                [sys.executable, "-m", "odradek.cli.main", "consume", "bench-crash", "-b",
                 bootstrap, "--group", group, "--session-timeout-ms", "3000"],
                stdout=subprocess.DEVNULL, cwd=ROOT) for _ in range(4)]
            try:
                wait(admin, group, 4)
                procs[0].kill()
                started = time.monotonic()
                wait(admin, group, 3)
                times.append(time.monotonic() - started)
            finally:
                for proc in procs:
                    proc.kill()
                    proc.wait(10)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tries", type=int, default=7)
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--size", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = ClusterProcesses(Path(tmp)).start()
        try:
            joins, leaves = asyncio.run(rebalances(cluster.bootstrap, args.tries))
            print(f"rebalance on join:  median {statistics.median(joins) * 1000:.0f} ms "
                  f"(min {min(joins) * 1000:.0f}, max {max(joins) * 1000:.0f}, n={len(joins)})")
            print(f"rebalance on leave: median {statistics.median(leaves) * 1000:.0f} ms "
                  f"(min {min(leaves) * 1000:.0f}, max {max(leaves) * 1000:.0f}, "
                  f"n={len(leaves)})")
            crash = crashes(cluster.bootstrap, args.tries)
            print(f"rebalance on kill -9 (session timeout 3000 ms): median "
                  f"{statistics.median(crash) * 1000:.0f} ms (min {min(crash) * 1000:.0f}, "
                  f"max {max(crash) * 1000:.0f}, n={len(crash)})")
            asyncio.run(fill(cluster.bootstrap, "bench-throughput", args.records, args.size))
            result = throughput(cluster.bootstrap, "bench-throughput")
            print(f"4-member group: {result['records']:.0f} records of {args.size} B in "
                  f"{result['seconds']:.2f} s: {result['records_per_s']:.0f} records/s, "
                  f"{result['mb_per_s']:.1f} MB/s (per member {result['per_member']})")
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
