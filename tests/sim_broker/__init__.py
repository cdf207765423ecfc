"""Deterministic simulation of whole brokers (world.py): ``python -m tests.sim_broker.run``.

The two bugs fixed on main, as the simulation found them before the fixes (seeds of
``python -m tests.sim_broker.run --seeds 140 --reintroduce NAME --known-bugs report``,
re-read whenever the workload changes the schedules; each replays with
``python -m tests.sim_broker.run --seed S --reintroduce NAME``):

a. A fetch at an offset at or below a high watermark the partition had exposed, answered
   OFFSET_OUT_OF_RANGE by a leader whose own high watermark is behind (a new leader that
   has not caught up, or a deposed one). Violation FETCH_OUT_OF_RANGE_BELOW_HW.
b. A lost metadata proposal acknowledged as applied (wait_applied(offset) returned when
   another command was applied at or after that offset): DUPLICATE_PRODUCER_ID (the
   broker hands out its previous block again), then WRITE_LOST_UNDER_REUSED_PRODUCER_ID
   (the partition takes the second producer's batches for retries of the first one's);
   the same root cause shows on topic changes as ACKNOWLEDGED_ADMIN_CHANGE_LOST.

d. Found by the real-process chaos tests (tests/chaos, seed 201), then here: a named
   producer instance initialising again after an unsure batch took its name back even
   after a newer instance had it, and fenced its successor. FENCED_PRODUCER_RESUMED.

c. Planted, not found: group changes (commits, memberships) answered once the
   coordinator's own log has them, before a majority does. A new coordinator then loads
   a log without them: COMMITTED_OFFSET_WENT_BACK, ACKED_COMMIT_LOST. It shows that the
   group checks work.

e. Found here once fsyncs ran behind the event loop (SimSyncer): a write waiting for its
   commit counted as committed once the high watermark passed its offset, though a new
   leader's entry had replaced it there (a deposed leader learned its step-down and its
   successor's commit in one Ready). ACKED_WRITE_LOST. Also
   tests/integration/test_replication_inprocess.py.

These seeds are the self-test's (``make sim-broker-selftest``, tests/sim_broker/selftest.py):
with the fix put back (``--reintroduce NAME``, a name from odradek.broker.regressions)
some must find their bug; with the fixes in, none may fail. With the fixes, bug b's cause
showed on topic changes too (seed 50): ClusterNode.propose now counts only its own
command's application, for every command."""

KNOWN_BUG_SEEDS: dict[str, tuple[int, ...]] = {
    # 130: found again once broken connections started elections at once; 16 and 18 once
    # the durable-end slots (one more file per log) changed how power losses play; 104 ...
    # 272 of 1-300 since replicas' files open behind the event loop (replica_files.py).
    "a": (104, 123, 218, 267, 271, 272),
    # 9 ... 113 hand out a producer id twice.
    "b": (9, 45, 52, 113),
    # Planted (regressions.GROUP_CHANGES_WITHOUT_QUORUM): an acknowledged commit is lost.
    # 14 ... 91 of 1-120 since the tick walks only awake groups and the host processes
    # groups in the order they got work (the seeds of before no longer show it).
    "c": (14, 28, 38, 48, 68, 91),
    # A fenced named producer resumes its name.
    "d": (30, 32, 46, 51),
    # A deposed leader acknowledges a write its successor replaced (1 seed of 140; since
    # broken connections start elections at once, seeds play differently: 1 of 470; since
    # the per-broker state journal, 103, 210 and 365 of 1-600, no longer 470; since the
    # tick walks only awake groups, 135, 285 and 556 of 1-600; since replicas' files open
    # behind the event loop, 185, 195 and 514 of 1-600).
    "e": (185, 195, 514),
}
