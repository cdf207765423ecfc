"""The whole-broker simulation under pytest: a bounded run of seeds, and determinism."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

from tests.sim_broker.loop import Proc, SimLoop
from tests.sim_broker.run import HASH_SEED
from tests.sim_broker.world import World

ROOT = Path(__file__).resolve().parents[2]
# 60 seeds keep make test within its budget (`make sim-broker` runs 200); they hold seeds
# on which fixed bugs a to d showed, and E_SEED is where bug e shows (since the state
# journal, until the tick walked only awake groups, then 135 until replicas' files opened
# behind the event loop: 185 now). Seed 120 is where
# a power loss left a batch with a flipped baseOffset past the last flush
# (storage/durable_end.py; it fails with the cut taken out).
SEEDS = int(os.environ.get("SIM_BROKER_SEEDS", "60"))
E_SEED = 185
REGRESSION_SEEDS = (120, E_SEED)


def _run_seeds(first: int, count: int) -> None:
    env = {**os.environ, "PYTHONHASHSEED": HASH_SEED}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.sim_broker.run", "--seed", str(first), "--seeds",
         str(count), "--known-bugs", "fail"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    print(proc.stdout[-20000:], proc.stderr[-5000:])
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]


def test_seeds_hold_the_properties() -> None:
    """Seeds 1..SEEDS and REGRESSION_SEEDS, in a child process with the hash seed pinned
    (as run.py pins it) so that a failure printed here replays with the command it
    prints. Any violation fails, the fixed bugs' (see tests/sim_broker/__init__.py)
    included."""
    _run_seeds(1, SEEDS)
    for seed in REGRESSION_SEEDS:
        if seed > SEEDS:
            _run_seeds(seed, 1)


def test_same_seed_same_run() -> None:
    threads = threading.active_count()
    first = World(3)
    stats = first.run()
    assert threading.active_count() == threads  # nothing in the brokers started a thread
    again = World(3)
    assert again.run() == stats
    assert again.trace == first.trace
    assert [str(p) for p in again.history.problems] == [str(p) for p in first.history.problems]


def test_loop_virtual_time_pause_and_kill() -> None:
    loop = SimLoop()
    ran: list[str] = []
    a, b = Proc("a"), Proc("b")

    async def ticker(name: str) -> None:
        while True:
            await asyncio.sleep(1.0)
            ran.append(f"{name}@{loop.time():.1f}")

    async def main() -> None:
        loop.spawn_as(a, ticker("a"))
        loop.spawn_as(b, ticker("b"))
        await asyncio.sleep(2.5)
        loop.pause(a)
        loop.kill(b)
        await asyncio.sleep(3.0)
        loop.resume(a)
        await asyncio.sleep(1.1)

    try:
        loop.run_until_complete(asyncio.wait_for(main(), 100))
    finally:
        loop.close()
    # a's tick due at 3 was held until the resume at 5.5; b never ran after its death.
    assert sorted(ran) == ["a@1.0", "a@2.0", "a@5.5", "a@6.5", "b@1.0", "b@2.0"]
    assert 6.6 <= loop.time() < 6.7
