"""Deterministic simulation over the real storage code: every node's Raft log is a real
PartitionLog on disk (1 KiB segments) behind PartitionRaftStorage, and crashes lose,
tear and corrupt what was not fsynced (tests/sim/real_storage.py). The same invariants as
test_sim.py must hold. A failure names the command that replays it exactly."""

from __future__ import annotations

import logging
import time

import pytest

from tests.sim.cluster import Violation, make_cluster, nodes_for_seed, replay_command

SEEDS = 100
STEPS = 800
CHUNK = 20
FIRST = 10_001  # seeds distinct from test_sim.py's


def _run(seeds: range, steps: int) -> tuple[list[str], dict[str, int]]:
    failures: list[str] = []
    totals: dict[str, int] = {}
    for seed in seeds:
        nodes = nodes_for_seed(seed)
        sim = make_cluster(seed, nodes, steps, real_storage=True)
        try:
            stats = sim.run()
        except Violation as e:
            failures.append(str(e))
            continue
        except Exception as e:  # the storage code itself failed (e.g. could not recover)
            failures.append(f"seed {seed}: {type(e).__name__}: {e}\n  replay: "
                            + replay_command(seed, steps, nodes, real_storage=True))
            continue
        for k, v in stats.items():
            totals[k] = totals.get(k, 0) + v
    return failures, totals


@pytest.fixture(autouse=True)
def _quiet_recovery() -> None:
    # recovery warnings are the expected outcome of the simulated crashes
    logging.getLogger("odradek").setLevel(logging.ERROR)


@pytest.mark.parametrize("first", range(FIRST, FIRST + SEEDS, CHUNK))
def test_real_storage_seeds(first: int) -> None:
    t0 = time.perf_counter()
    failures, totals = _run(range(first, first + CHUNK), STEPS)
    dt = time.perf_counter() - t0
    print(f"seeds {first}..{first + CHUNK - 1}: {CHUNK / dt * 60:.0f} seeds/min {totals}")
    assert not failures, "\n".join(failures)
    assert totals["acked"] > 0
    assert totals["truncations"] > 0
    # the crash model really damaged files: tails lost, torn mid-batch, bytes flipped
    assert totals["lost_bytes"] > 0
    assert totals["mid_write_crashes"] > 0
    assert totals["torn"] > 0


def test_real_storage_replay_is_exact() -> None:
    a = make_cluster(20_002, 3, 400, real_storage=True)
    b = make_cluster(20_002, 3, 400, real_storage=True)
    assert a.run() == b.run()
    assert list(a.trace) == list(b.trace)


def test_real_storage_detects_unsynced_appends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sanity check of the crash model: storage that acknowledges entries without
    fsyncing them must be caught, and the failure names its replay command."""
    from odradek.storage import PartitionLog

    monkeypatch.setattr(PartitionLog, "flush", lambda self: None)
    failures, _ = _run(range(FIRST, FIRST + 10), 600)
    assert failures
    assert "--real-storage" in failures[0]
