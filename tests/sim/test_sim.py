"""Deterministic simulation: 500 seeds of 3- and 5-node groups under network faults,
crashes with lost unsynced writes, pauses, leadership transfers, membership changes and
compaction. A failure names the command that replays it exactly."""

from __future__ import annotations

import random
import time

import pytest

from tests.sim.cluster import SimCluster, SimParams, Violation, nodes_for_seed

SEEDS = 500
STEPS = 3000
CHUNK = 50


def _run(seeds: range, steps: int) -> tuple[list[str], dict[str, int]]:
    failures: list[str] = []
    totals: dict[str, int] = {}
    for seed in seeds:
        sim = SimCluster(seed, nodes=nodes_for_seed(seed), steps=steps)
        try:
            stats = sim.run()
        except Violation as e:
            failures.append(str(e))
            continue
        for k, v in stats.items():
            totals[k] = totals.get(k, 0) + v
    return failures, totals


@pytest.mark.parametrize("first", range(1, SEEDS + 1, CHUNK))
def test_seeds(first: int) -> None:
    t0 = time.perf_counter()
    failures, totals = _run(range(first, first + CHUNK), STEPS)
    dt = time.perf_counter() - t0
    print(f"seeds {first}..{first + CHUNK - 1}: {CHUNK / dt * 60:.0f} seeds/min {totals}")
    assert not failures, "\n".join(failures)
    assert totals["acked"] > 0


def test_scenarios_cover_membership_transfer_and_compaction() -> None:
    """The seed range includes each kind of scenario, and each kind really happens."""
    kinds = {"membership": 0, "transfer": 0, "compaction": 0, "five": 0}
    for seed in range(1, SEEDS + 1):
        n = nodes_for_seed(seed)
        p = SimParams.from_seed(random.Random(seed), n)
        kinds["membership"] += p.membership
        kinds["transfer"] += p.transfer
        kinds["compaction"] += p.compaction
        kinds["five"] += n == 5
    assert all(v >= 50 for v in kinds.values()), kinds
    failures, totals = _run(range(1, 41), 1500)
    assert not failures, "\n".join(failures)
    assert totals["config_changes"] > 0
    assert totals["transfers"] > 0
    assert totals["snapshots"] > 0  # a lagging node installed a snapshot
    assert totals["truncations"] > 0  # followers had divergent tails to cut
    assert totals["leader_lost"] > 0  # followers campaigned on a broken connection


def test_replay_is_exact() -> None:
    a = SimCluster(424242, nodes=5, steps=800)
    b = SimCluster(424242, nodes=5, steps=800)
    assert a.run() == b.run()
    assert list(a.trace) == list(b.trace)


def test_simulator_detects_a_broken_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sanity check of the checker: a core that grants votes without comparing logs must
    be caught (and the failure names its replay command)."""
    from odradek.raft.log import RaftLog

    monkeypatch.setattr(RaftLog, "is_up_to_date", lambda self, i, t: True)
    failures, _ = _run(range(1, 31), 600)
    assert failures
    assert "python -m tests.sim.run --seed" in failures[0]
