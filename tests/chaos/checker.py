"""What the clients saw, checked against what the replicas hold at the end, in the manner
of Jepsen's queue and list-append checkers: the final log of each partition is the
reference history, and every client observation must fit in it.

The rules (one violation kind each):
- ACKED_WRITE_LOST: an acknowledged value is not in the log at its acknowledged offset.
- DUPLICATE: a value is in a partition's log more than once.
- REORDERED: one producer's values are in a partition's log out of the order it sent
  them (an idempotent producer keeps one request in flight per partition).
- FENCED_PRODUCER_ACKED: a named producer's instance got an acknowledgement for a write
  stored after the first write of the instance that replaced (fenced) it.
- REPLICAS_DIFFER: two replicas of a partition hold different records, or a replica's
  files hold a batch whose CRC is wrong (corruption not repaired).
- POLL_WENT_BACKWARDS: one consumer's reads of a partition went back (within one group
  generation; a tailing consumer never rewinds).
- POLL_SKIPPED: a tailing consumer read two records with a record of the log between
  them that it never read; GROUP_SKIPPED: a record between the first and last offset the
  group read that no member read.
- READ_NOT_IN_LOG: a consumer read a value the log does not hold at that offset (an
  uncommitted read, or served corruption).
- OUT_OF_RANGE: a fetch at an offset the partition had committed was called out of range.
- CORRUPT_RECORD_SERVED: a consumer's CRC check failed on what a broker sent."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

TP = tuple[str, int]
Records = list[tuple[int, bytes]]


@dataclass(frozen=True)
class Violation:
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass
class History:
    """Appended to by the workload's tasks; read by check() once they have stopped."""

    acked: dict[bytes, tuple[TP, int]] = field(default_factory=dict)
    unsure: set[bytes] = field(default_factory=set)
    # (named producer, tp) -> per instance number, the offsets acknowledged to it
    named_acks: dict[tuple[str, TP], dict[int, list[int]]] = field(default_factory=dict)
    # (named producer, instance) -> the (producer id, epoch) its acknowledgements came with
    identities: dict[tuple[str, int], set[tuple[int, int]]] = field(default_factory=dict)
    # (reader, tp) -> offsets and values in the order read; a reader is a tailing
    # consumer, or one group member in one generation
    reads: dict[tuple[str, TP], Records] = field(default_factory=dict)
    group_reads: dict[TP, set[int]] = field(default_factory=dict)
    tail_readers: set[str] = field(default_factory=set)
    errors: list[Violation] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Set by the first violation seen as it happens: the schedule stops there.
    failed: threading.Event = field(default_factory=threading.Event)

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def ack(self, value: bytes, tp: TP, offset: int, named: tuple[str, int] | None = None,
            identity: tuple[int, int] | None = None) -> None:
        with self._lock:
            self.acked[value] = (tp, offset)
            self.counts["acked"] = self.counts.get("acked", 0) + 1
            if named is not None:
                self.named_acks.setdefault((named[0], tp), {}).setdefault(
                    named[1], []).append(offset)
                if identity is not None:
                    self.identities.setdefault(named, set()).add(identity)

    def maybe(self, value: bytes) -> None:
        with self._lock:
            self.unsure.add(value)

    def read(self, reader: str, tp: TP, records: Iterable[tuple[int, bytes]],
             group: bool) -> None:
        with self._lock:
            got = self.reads.setdefault((reader, tp), [])
            for offset, value in records:
                got.append((offset, value))
                if group:
                    self.group_reads.setdefault(tp, set()).add(offset)
                self.counts["reads"] = self.counts.get("reads", 0) + 1
            if not group:
                self.tail_readers.add(reader)

    def violation(self, kind: str, message: str) -> None:
        with self._lock:
            self.errors.append(Violation(kind, message))
        self.failed.set()

    # ------------------------------------------------------------------ at the end
    def check(self, logs: dict[TP, dict[int, tuple[Records, str | None]]]) -> list[Violation]:
        """logs: per partition, per replica (broker id), its records and its first bad
        batch. The first replica listed is the reference (the leader)."""
        out = list(self.errors)
        final: dict[TP, dict[int, bytes]] = {}
        for tp, replicas in sorted(logs.items()):
            name = f"{tp[0]}-{tp[1]}"
            (leader, (reference, _)), *_ = replicas.items()
            final[tp] = dict(reference)
            for broker, (records, bad) in replicas.items():
                if bad is not None:
                    out.append(Violation("REPLICAS_DIFFER", f"{name} on broker {broker} has "
                                         f"a corrupt batch: {bad}"))
                if records != reference:
                    diff = next((i for i, (a, b) in enumerate(zip(records, reference,
                                                                   strict=False)) if a != b),
                                min(len(records), len(reference)))
                    out.append(Violation(
                        "REPLICAS_DIFFER", f"{name}: broker {broker} and broker {leader} "
                        f"differ from record {diff} ({len(records)} vs {len(reference)})"))
            seen: dict[bytes, int] = {}
            last: dict[bytes, tuple[int, int]] = {}
            for offset, value in reference:
                if value in seen:
                    out.append(Violation("DUPLICATE", f"{value!r} at offsets {seen[value]} "
                                         f"and {offset} of {name}"))
                seen[value] = offset
                producer, _, seq = value.rpartition(b":")
                if seq.isdigit():
                    before = last.get(producer)
                    if before is not None and int(seq) < before[0]:
                        out.append(Violation("REORDERED", f"{producer!r} wrote {seq.decode()} "
                                             f"at {offset} after {before[0]} at {before[1]} "
                                             f"in {name}"))
                    last[producer] = (int(seq), offset)
        for value, (tp, offset) in self.acked.items():
            log = final.get(tp)
            if log is not None and log.get(offset) != value:
                out.append(Violation("ACKED_WRITE_LOST", f"{value!r} acknowledged at "
                                     f"{tp[0]}-{tp[1]} offset {offset}; the log has "
                                     f"{log.get(offset)!r}"))
        for (named, tp), instances in self.named_acks.items():
            for instance, offsets in instances.items():
                later = [(min(o), i) for i, o in instances.items() if i > instance and o]
                if later and max(offsets) > min(later)[0]:
                    first, successor = min(later)
                    ids = {n: sorted(self.identities.get((named, n), ()))
                           for n in (instance, successor)}
                    out.append(Violation("FENCED_PRODUCER_ACKED", f"{named} instance "
                                         f"{instance} acknowledged at {max(offsets)} of "
                                         f"{tp[0]}-{tp[1]}, after instance {successor} wrote "
                                         f"at {first}; (producer id, epoch) of each: {ids}"))
        for (reader, tp), got in self.reads.items():
            log = final.get(tp)
            if log is None:
                continue
            offsets = sorted(log)
            index = {o: i for i, o in enumerate(offsets)}
            for offset, value in got:
                if log.get(offset) != value:
                    out.append(Violation("READ_NOT_IN_LOG", f"{reader} read {value!r} at "
                                         f"{tp[0]}-{tp[1]} offset {offset}; the log has "
                                         f"{log.get(offset)!r}"))
            for (a, _), (b, _) in zip(got, got[1:], strict=False):
                if b <= a:
                    out.append(Violation("POLL_WENT_BACKWARDS", f"{reader} read {tp[0]}-"
                                         f"{tp[1]} offset {a}, then {b}"))
                elif (reader in self.tail_readers and a in index and b in index
                      and index[b] != index[a] + 1):
                    out.append(Violation("POLL_SKIPPED", f"{reader} read {tp[0]}-{tp[1]} "
                                         f"offset {a}, then {b}, and the log has "
                                         f"{offsets[index[a] + 1]} between"))
        for tp, got_offsets in self.group_reads.items():
            log = final.get(tp)
            if log is None or not got_offsets:
                continue
            low, high = min(got_offsets), max(got_offsets)
            missed = [o for o in log if low <= o <= high and o not in got_offsets]
            if missed:
                out.append(Violation("GROUP_SKIPPED", f"the group read {tp[0]}-{tp[1]} "
                                     f"from {low} to {high} but never {len(missed)} records "
                                     f"there, first offset {missed[0]}"))
        return out


def check_metadata(logs: dict[int, tuple[list[tuple[int, bytes]], str | None]]
                   ) -> list[Violation]:
    """The voters' metadata logs (each voter's commands and first bad batch, read once
    the brokers stopped): every batch passes its CRC (a flipped one is cut at the voter's
    start, never kept), and at every offset two voters both hold they hold the same
    command (snapshots move the log starts apart)."""
    out = [Violation("CORRUPT_METADATA_LOG", f"voter {i}: {bad}")
           for i, (_, bad) in sorted(logs.items()) if bad is not None]
    held = {i: dict(records) for i, (records, _) in sorted(logs.items())}
    if not held:
        return out
    first = min(held)
    for i in sorted(held):
        differ = [o for o in sorted(held[first].keys() & held[i].keys())
                  if held[first][o] != held[i][o]]
        if differ:
            out.append(Violation("METADATA_LOGS_DIFFER", f"voters {first} and {i} differ at "
                                 f"{len(differ)} offsets, the first {differ[0]}"))
    return out
