"""Fixed bugs that the whole-broker simulation's self-test puts back on purpose, to show
that the simulation still finds them (`make sim-broker-selftest`). Nothing else sets
these; in production the set stays empty."""

from __future__ import annotations

# A proposal's offset being applied counts as the proposal applied (a lost proposal hands
# out the broker's previous producer id block again).
LOST_PROPOSAL_COUNTS = "lost-proposal-counts"
# A leader answers OFFSET_OUT_OF_RANGE above its own high watermark without being sure of
# it (a deposed leader, or a new one whose high watermark has not caught up).
UNSURE_LEADER_OUT_OF_RANGE = "unsure-leader-out-of-range"
# Not a bug that was found but one planted, to show that the simulation's group checks
# work: a group change is answered once the coordinator's own log has it, before a
# majority of the partition's replicas does.
GROUP_CHANGES_WITHOUT_QUORUM = "group-changes-without-quorum"
# A named producer instance initialising again took its name back even after a newer
# instance had it (found by tests/chaos): it then fenced its successor.
FENCED_PRODUCER_RESUMES = "fenced-producer-resumes"

# Planted, to show that the simulation checks the fsync thread's ordering: a Ready's
# messages (a follower's acknowledgements, a candidate's votes) leave before its fsync.
SENDS_BEFORE_FSYNC = "sends-before-fsync"

# A write waiting for its commit counted as committed once the high watermark passed its
# offset, even when a new leader's entry had replaced it there (found by the whole-broker
# simulation once fsyncs ran behind the loop: the step-down and the new leader's commit
# reached the deposed leader in one Ready).
PENDING_WITHOUT_TERM = "pending-without-term"

reintroduced: set[str] = set()
