"""Run simulation seeds: ``python -m tests.sim.run --seed 12345 --steps 3000``."""

from __future__ import annotations

import argparse
import sys
import time

from tests.sim.cluster import SimCluster, Violation, nodes_for_seed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Deterministic Raft simulation")
    ap.add_argument("--seed", type=int, default=1, help="first seed")
    ap.add_argument("--seeds", type=int, default=1, help="how many seeds from --seed")
    ap.add_argument("--steps", type=int, default=3000, help="ticks per seed before the heal")
    ap.add_argument("--nodes", type=int, default=0, help="3 or 5 (default: by seed parity)")
    ap.add_argument("--verbose", action="store_true", help="print every event")
    args = ap.parse_args(argv)
    failures = 0
    t0 = time.perf_counter()
    totals: dict[str, int] = {}
    for seed in range(args.seed, args.seed + args.seeds):
        nodes = args.nodes or nodes_for_seed(seed)
        sim = SimCluster(seed, nodes=nodes, steps=args.steps, verbose=args.verbose)
        try:
            stats = sim.run()
        except Violation as e:
            failures += 1
            if not args.verbose:
                print("\n".join(list(sim.trace)[-40:]))
            print(f"FAIL {e}")
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
