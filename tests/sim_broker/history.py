"""What the clients saw, and the properties it must have.

Checked as answers arrive: the high watermark a broker's replica answers with never goes
back within that replica's life; no fetch at or below a high watermark the partition ever
exposed is answered OFFSET_OUT_OF_RANGE (known bug a); no (producer id, epoch) is handed
out twice (known bug b). Checked after the heal (``check_logs``): every acknowledged write
is in the committed log exactly once, at the offset it was acknowledged with, and on every
replica; replicas agree; nothing a consumer read was later lost (no read of uncommitted
data); an idempotent producer's acknowledged writes are in the order it made them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from odradek.broker import clock

TP = tuple[str, int]

# Violation kinds of the two bugs being fixed on main (see tests/sim_broker/__init__.py).
BUG_A = "FETCH_OUT_OF_RANGE_BELOW_HW"
BUG_B = "DUPLICATE_PRODUCER_ID"
# What a reused producer id does next: the partition takes the second producer's batches
# for retries of the first one's and answers with their offsets (the write is lost).
BUG_B_EFFECT = "WRITE_LOST_UNDER_REUSED_PRODUCER_ID"
# The same root cause as b, seen on a topic change: the controller's propose acknowledged
# a proposal that was lost (wait_applied(offset) returned on another command at a later
# offset), so the admin request succeeded and the image never got the change.
BUG_B_ADMIN = "ACKNOWLEDGED_ADMIN_CHANGE_LOST"
# What the planted bug c (odradek.broker.regressions.GROUP_CHANGES_WITHOUT_QUORUM) shows as.
GROUP_GENERATION_WENT_BACK = "GROUP_GENERATION_WENT_BACK"
COMMITTED_OFFSET_WENT_BACK = "COMMITTED_OFFSET_WENT_BACK"
ACKED_COMMIT_LOST = "ACKED_COMMIT_LOST"
# Bug d (found by tests/chaos): a fenced named producer took its name back by resuming.
FENCED_PRODUCER_RESUMED = "FENCED_PRODUCER_RESUMED"
FENCED_PRODUCER_ACKED = "FENCED_PRODUCER_ACKED"
KNOWN_BUGS = {BUG_A: "a", BUG_B: "b", BUG_B_EFFECT: "b", BUG_B_ADMIN: "b",
              GROUP_GENERATION_WENT_BACK: "c", COMMITTED_OFFSET_WENT_BACK: "c",
              ACKED_COMMIT_LOST: "c", FENCED_PRODUCER_RESUMED: "d", FENCED_PRODUCER_ACKED: "d"}


@dataclass(frozen=True)
class Problem:
    kind: str
    message: str
    at: float  # simulated seconds

    def __str__(self) -> str:
        bug = KNOWN_BUGS.get(self.kind)
        tag = f" (known bug {bug})" if bug else ""
        return f"{self.kind}{tag} at t={self.at:.3f}s: {self.message}"


@dataclass
class History:
    problems: list[Problem] = field(default_factory=list)
    # value -> (topic, partition, offset) of acknowledged writes
    acked: dict[bytes, tuple[str, int, int]] = field(default_factory=dict)
    unsure: set[bytes] = field(default_factory=set)
    identity_of: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    ack_order: dict[tuple[str, str, int], list[tuple[int, tuple[int, int]]]] = field(
        default_factory=dict)
    reused: set[tuple[int, int]] = field(default_factory=set)
    exposed_hw: dict[TP, int] = field(default_factory=dict)
    replica_hw: dict[tuple[TP, str], int] = field(default_factory=dict)
    read: dict[TP, dict[int, bytes]] = field(default_factory=dict)
    pids: dict[tuple[int, int], str] = field(default_factory=dict)
    # the highest acknowledged commit of the group per partition; generations per member
    group_commits: dict[TP, int] = field(default_factory=dict)
    generations: dict[str, int] = field(default_factory=dict)
    # named producers: pid -> newest epoch given out; (tp, pid) -> epoch -> first offset
    named_epochs: dict[int, int] = field(default_factory=dict)
    named_first: dict[tuple[TP, int], dict[int, int]] = field(default_factory=dict)
    named_last: dict[tuple[TP, int], dict[int, int]] = field(default_factory=dict)
    named_given: dict[tuple[int, int], tuple[int, int] | None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def problem(self, kind: str, message: str) -> None:
        self.problems.append(Problem(kind, message, clock.monotonic()))

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    # ------------------------------------------------------------ as it happens
    def produced(self, producer: str, tp: TP, values: list[bytes], base: int,
                 identity: tuple[int, int]) -> None:
        self.count("acked_writes", len(values))
        for i, value in enumerate(values):
            self.acked[value] = (tp[0], tp[1], base + i)
            self.identity_of[value] = identity
        self.ack_order.setdefault((producer, *tp), []).append((base, identity))

    def maybe_produced(self, values: Iterable[bytes]) -> None:
        self.unsure.update(values)

    def fetched(self, tp: TP, replica: str, offset: int, hw: int,
                records: list[tuple[int, bytes]]) -> None:
        self.count("fetches")
        key = (tp, replica)
        seen = self.replica_hw.get(key)
        if seen is not None and hw < seen:
            self.problem("HIGH_WATERMARK_WENT_BACK",
                         f"{replica} answered {tp[0]}-{tp[1]} with high watermark {hw} "
                         f"after {seen}")
        self.replica_hw[key] = max(hw, seen if seen is not None else hw)
        if hw > self.exposed_hw.get(tp, 0):
            self.exposed_hw[tp] = hw
        reads = self.read.setdefault(tp, {})
        for off, value in records:
            if off >= hw:
                self.problem("READ_ABOVE_HIGH_WATERMARK",
                             f"{replica} returned offset {off} of {tp[0]}-{tp[1]} with high "
                             f"watermark {hw}")
            earlier = reads.get(off)
            if earlier is not None and earlier != value:
                self.problem("READS_DISAGREE", f"{tp[0]}-{tp[1]} offset {off} read as "
                             f"{earlier!r} and later as {value!r}")
            reads[off] = value

    def out_of_range(self, tp: TP, replica: str, offset: int, detail: str) -> None:
        self.count("out_of_range")
        exposed = self.exposed_hw.get(tp, 0)
        if offset <= exposed:
            self.problem(BUG_A, f"{replica} answered a fetch of {tp[0]}-{tp[1]} at offset "
                         f"{offset} OFFSET_OUT_OF_RANGE ({detail}), but the partition "
                         f"exposed high watermark {exposed}")

    def producer_id(self, pid: int, epoch: int, where: str) -> None:
        self.count("producer_ids")
        first = self.pids.get((pid, epoch))
        if first is not None:
            self.reused.add((pid, epoch))
            self.problem(BUG_B, f"producer id {pid} epoch {epoch} handed out twice: {first} "
                         f"and {where}")
        else:
            self.pids[(pid, epoch)] = where

    def named_identity(self, pid: int, epoch: int, resume: tuple[int, int] | None) -> None:
        """A named producer instance got (pid, epoch). A resume must not go back in epoch
        (it would fence a newer instance); no (pid, epoch) is given out twice, except to
        the same resume asked again (its first answer was lost)."""
        self.count("named_inits")
        given = self.named_given.get((pid, epoch))
        if given is None:
            self.producer_id(pid, epoch, f"named ({'resume' if resume else 'new instance'})")
            self.named_given[(pid, epoch)] = resume
        elif resume is None or given != resume:
            self.problem(BUG_B, f"named producer {pid} epoch {epoch} given out twice")
        newest = self.named_epochs.get(pid, -1)
        if resume is not None and resume[1] < newest and epoch > newest:
            self.problem(FENCED_PRODUCER_RESUMED, f"named producer {pid} epoch {resume[1]} "
                         f"resumed as epoch {epoch} after epoch {newest} was given out")
        self.named_epochs[pid] = max(newest, epoch)

    def named_ack(self, tp: TP, offset: int, pid: int, epoch: int, value: bytes) -> None:
        """No write of a fenced epoch lands after a newer epoch's first on the partition."""
        self.count("named_acks")
        self.acked[value] = (tp[0], tp[1], offset)
        first = self.named_first.setdefault((tp, pid), {})
        last = self.named_last.setdefault((tp, pid), {})
        first[epoch] = min(offset, first.get(epoch, offset))
        last[epoch] = max(offset, last.get(epoch, offset))
        for older, end in last.items():
            for newer, start in first.items():
                if older < newer and end > start:
                    self.problem(FENCED_PRODUCER_ACKED, f"named producer {pid} epoch "
                                 f"{older} was acknowledged at {tp[0]}-{tp[1]} offset {end}, "
                                 f"after epoch {newer} wrote at {start}")

    def group_generation(self, member: str, generation: int, what: str) -> None:
        """Joined carries the group's generation, an assignment the generation in which
        the member's own assignment last changed (lower, when others changed since):
        each goes forward on its own."""
        key = f"{member} {what}"
        seen = self.generations.get(key, -1)
        if generation < seen:
            self.problem(GROUP_GENERATION_WENT_BACK, f"{member} was sent {what} with "
                         f"generation {generation} after generation {seen}")
        self.generations[key] = max(seen, generation)

    def committed(self, tp: TP, offset: int) -> None:
        self.count("group_commits")
        self.group_commits[tp] = max(offset, self.group_commits.get(tp, -1))

    def acked_commit(self, tp: TP) -> int:
        return self.group_commits.get(tp, -1)

    def fetched_commit(self, tp: TP, offset: int, floor: int, where: str) -> None:
        """A member starting on tp was told ``offset``; ``floor`` had been acknowledged
        as committed before it asked."""
        if offset < floor:
            self.problem(COMMITTED_OFFSET_WENT_BACK,
                         f"{where} answered the committed offset of {tp[0]}-{tp[1]} with "
                         f"{offset}; {floor} had been acknowledged")

    # ------------------------------------------------------------ after the heal
    def check_logs(self, logs: dict[TP, dict[str, list[tuple[int, bytes]]]],
                   leaders: dict[TP, str]) -> None:
        """logs: per partition, each replica's committed data records (offset, value)."""
        committed: dict[TP, dict[int, bytes]] = {}
        for tp, replicas in logs.items():
            leader = leaders[tp]
            reference = replicas[leader]
            committed[tp] = dict(reference)
            where: dict[bytes, int] = {}
            for off, value in reference:
                if value in where:
                    self.problem("DUPLICATE_WRITE", f"{value!r} is at offsets {where[value]} "
                                 f"and {off} of {tp[0]}-{tp[1]}")
                where[value] = off
            for name, records in replicas.items():
                if records != reference:
                    diff = next((i for i, (a, b) in enumerate(zip(records, reference,
                                                                   strict=False)) if a != b),
                                min(len(records), len(reference)))
                    self.problem("REPLICAS_DIVERGE",
                                 f"{tp[0]}-{tp[1]}: {name} and leader {leader} differ from "
                                 f"record {diff} ({len(records)} vs {len(reference)} records)")
        for value, (topic, index, off) in self.acked.items():
            if (topic, index) not in committed:
                continue  # a deleted topic's
            found = committed[(topic, index)].get(off)
            if found != value:
                kind = (BUG_B_EFFECT if self.identity_of.get(value) in self.reused
                        else "ACKED_WRITE_LOST")
                self.problem(kind, f"{value!r} was acknowledged at {topic}-"
                             f"{index} offset {off}; the log has {found!r} there")
        for (producer, topic, index), acks in self.ack_order.items():
            if (topic, index) not in committed:
                continue
            for (a, _), (b, identity) in zip(acks, acks[1:], strict=False):
                if b <= a:
                    kind = BUG_B_EFFECT if identity in self.reused else "ACKS_OUT_OF_ORDER"
                    self.problem(kind, f"{producer}'s writes to {topic}-{index} were "
                                 f"acknowledged at offset {a}, then {b}")
        for tp, reads in self.read.items():
            log = committed.get(tp)
            if log is None:
                continue
            for off, value in reads.items():
                if log.get(off) != value:
                    self.problem("READ_UNCOMMITTED", f"a consumer read {value!r} at {tp[0]}-"
                                 f"{tp[1]} offset {off}; the committed log has "
                                 f"{log.get(off)!r}")
