"""Run whole-broker simulation seeds: ``python -m tests.sim_broker.run --seeds N [--seed S]``.

Prints, for each failing seed, its violations and the one command that replays it, then
a last line with the seeds, simulated minutes, faults injected and violations. Exits 1
on any violation (with ``--known-bugs report``, violations of the two known bugs are
printed but do not fail the run)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from tests.sim_broker.history import KNOWN_BUGS
from tests.sim_broker.world import World

HASH_SEED = "0"


def replay_command(seed: int) -> str:
    return f"python -m tests.sim_broker.run --seed {seed} --verbose"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Deterministic whole-broker simulation")
    ap.add_argument("--seed", type=int, default=1, help="first seed")
    ap.add_argument("--seeds", type=int, default=1, help="how many seeds from --seed")
    ap.add_argument("--verbose", action="store_true", help="print the trace and broker logs")
    ap.add_argument("--known-bugs", choices=["fail", "report"], default="fail",
                    help="whether the two known bugs (a, b) fail the run")
    ap.add_argument("--reintroduce", action="append", default=[], metavar="NAME",
                    help="put a fixed bug back (a name from odradek.broker.regressions, once "
                         "the fixes are merged) to show that the simulation finds it")
    args = ap.parse_args(argv)
    if os.environ.get("PYTHONHASHSEED") != HASH_SEED:
        # Set iteration order over strings depends on the hash seed: pin it, or a seed
        # would not replay the same schedule in another process.
        os.environ["PYTHONHASHSEED"] = HASH_SEED
        os.execv(sys.executable, [sys.executable, "-m", "tests.sim_broker.run",
                                  *(sys.argv[1:] if argv is None else argv)])
    if args.reintroduce:
        from odradek.broker import regressions  # type: ignore[attr-defined]
        regressions.reintroduced.update(args.reintroduce)
    t0 = time.perf_counter()
    failed = 0
    sim_s = 0.0
    faults = 0
    violations = 0
    known: dict[str, list[int]] = {}
    for seed in range(args.seed, args.seed + args.seeds):
        world = World(seed, args.verbose)
        try:
            stats = world.run()
        except Exception as exc:  # the broker code crashed the simulation: a failure too
            stats = world.stats()
            world.history.problem("CRASHED", f"{type(exc).__name__}: {exc}")
        sim_s += stats["sim_s"]
        faults += stats["faults"]
        problems = world.history.problems
        violations += len(problems)
        fatal = [p for p in problems
                 if args.known_bugs == "fail" or p.kind not in KNOWN_BUGS]
        for p in problems:
            if p.kind in KNOWN_BUGS:
                known.setdefault(KNOWN_BUGS[p.kind], []).append(seed)
        if args.verbose:
            print("\n".join(world.trace))
            print(f"seed {seed}: {stats} params: {world.params()}")
        if problems:
            if fatal:
                failed += 1
            print(f"FAIL seed {seed}" if fatal else f"KNOWN seed {seed}")
            for p in problems[:5]:
                print(f"  {p}")
            if len(problems) > 5:
                print(f"  ... and {len(problems) - 5} more")
            print(f"  replay: {replay_command(seed)}")
    dt = time.perf_counter() - t0
    for bug, seeds in sorted(known.items()):
        print(f"known bug {bug} found by seeds {sorted(set(seeds))}")
    print(f"{args.seeds} seeds ({args.seeds - failed} passed) in {dt:.1f}s "
          f"({args.seeds / dt * 60:.0f} seeds/min); simulated {sim_s / 60:.1f} min; "
          f"faults {faults}; violations {violations}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
