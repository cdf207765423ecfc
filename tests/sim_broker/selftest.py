"""``make sim-broker-selftest``: puts each fixed bug back (odradek.broker.regressions, a
switch nothing else sets) and shows that the simulation still finds it within the seeds
known to find it; then runs those seeds with the fixes in and shows that they pass.
Exits 1 if a bug is not found, or a seed fails without the bug put back."""

from __future__ import annotations

import os
import sys

from odradek.broker import regressions
from tests.sim_broker import KNOWN_BUG_SEEDS
from tests.sim_broker.history import KNOWN_BUGS
from tests.sim_broker.run import HASH_SEED
from tests.sim_broker.world import World

SWITCHES = {"a": regressions.UNSURE_LEADER_OUT_OF_RANGE, "b": regressions.LOST_PROPOSAL_COUNTS,
            "c": regressions.GROUP_CHANGES_WITHOUT_QUORUM,
            "d": regressions.FENCED_PRODUCER_RESUMES,
            "e": regressions.PENDING_WITHOUT_TERM}
# Bugs that show as a general violation rather than a kind of their own.
SHOWS_AS = {"e": {"ACKED_WRITE_LOST"}}


def found(bug: str, seed: int) -> tuple[bool, list[str]]:
    """Does this seed show the bug (and what else did it show)?"""
    world = World(seed)
    try:
        world.run()
    except Exception as exc:  # a crash of the broker code counts as a finding too
        world.history.problem("CRASHED", f"{type(exc).__name__}: {exc}")
    kinds = [p.kind for p in world.history.problems]
    return any(KNOWN_BUGS.get(k) == bug or k in SHOWS_AS.get(bug, ()) for k in kinds), kinds


def main() -> int:
    if os.environ.get("PYTHONHASHSEED") != HASH_SEED:
        os.environ["PYTHONHASHSEED"] = HASH_SEED  # seeds replay only with this hash seed
        os.execv(sys.executable, [sys.executable, "-m", "tests.sim_broker.selftest"])
    ok = True
    for bug, seeds in sorted(KNOWN_BUG_SEEDS.items()):
        switch = SWITCHES[bug]
        regressions.reintroduced.clear()
        regressions.reintroduced.add(switch)
        finders = [seed for seed in seeds if found(bug, seed)[0]]
        regressions.reintroduced.clear()
        clean = {seed: found(bug, seed)[1] for seed in seeds}
        dirty = {seed: kinds for seed, kinds in clean.items() if kinds}
        print(f"bug {bug} ({switch}) put back: found by {len(finders)} of {len(seeds)} seeds "
              f"{finders}; with the fix: {len(seeds) - len(dirty)} of {len(seeds)} pass"
              + (f", failing {dirty}" if dirty else ""))
        ok = ok and bool(finders) and not dirty
    print("self-test " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
