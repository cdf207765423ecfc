"""Run simulation seeds: ``python -m tests.sim.run --seed 12345 --steps 3000``.

``--real-storage`` runs every node over a real PartitionLog (see real_storage.py), with
crashes that lose, tear and corrupt unsynced writes."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from tests.sim.cluster import Violation, make_cluster, nodes_for_seed, replay_command


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Deterministic Raft simulation")
    ap.add_argument("--seed", type=int, default=1, help="first seed")
    ap.add_argument("--seeds", type=int, default=1, help="how many seeds from --seed")
    ap.add_argument("--steps", type=int, default=3000, help="ticks per seed before the heal")
    ap.add_argument("--nodes", type=int, default=0, help="3 or 5 (default: by seed parity)")
    ap.add_argument("--verbose", action="store_true", help="print every event")
    ap.add_argument("--real-storage", action="store_true",
                    help="real partition logs on disk, with crash damage to unsynced writes")
    args = ap.parse_args(argv)
    if not args.verbose:  # recovery warnings are expected after simulated crashes
        logging.getLogger("odradek").setLevel(logging.ERROR)
    failures = 0
    t0 = time.perf_counter()
    totals: dict[str, int] = {}
    for seed in range(args.seed, args.seed + args.seeds):
        nodes = args.nodes or nodes_for_seed(seed)
        sim = make_cluster(seed, nodes, args.steps, args.verbose, args.real_storage)
        try:
            stats = sim.run()
        except Violation as e:
            failures += 1
            if not args.verbose:
                print("\n".join(list(sim.trace)[-40:]))
            print(f"FAIL {e}")
            continue
        except Exception as e:  # the storage code crashed: also a failure of the seed
            failures += 1
            if not args.verbose:
                print("\n".join(list(sim.trace)[-40:]))
            print(f"FAIL seed {seed}: {type(e).__name__}: {e}\n  replay: "
                  + replay_command(seed, args.steps, nodes, args.real_storage))
            continue
        for k, v in stats.items():
            totals[k] = totals.get(k, 0) + v
        if args.seeds == 1 or args.verbose:
            print(f"seed {seed} ok: {stats} params: {sim.p}")
    dt = time.perf_counter() - t0
    print(
        f"{args.seeds - failures}/{args.seeds} seeds passed in {dt:.1f}s "
        f"({args.seeds / dt * 60:.0f} seeds/min); totals: {totals}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
