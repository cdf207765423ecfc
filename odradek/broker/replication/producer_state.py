"""Idempotent-producer state of one partition: for each producer id, its epoch and the
sequence numbers and offsets of its last few batches (Kafka's ProducerStateManager idea).

Pure: no I/O, no clock. The leader checks a batch against it before proposing (a retry of
a batch still remembered is a duplicate and is answered with the original offsets; a
sequence that skips ahead is a gap; an epoch below the producer's current one comes from
a fenced zombie). Every replica updates it as batches enter its log, so a new leader
already has it. Sequence numbers are int32 and wrap from 2**31 - 1 to 0, as in Kafka.

Consecutive batches of a producer stored at consecutive offsets (one request's batches,
or successive requests with nothing in between) are remembered as one run: a batch whose
sequences lie inside a run was stored there, at the offsets its sequences map to. So the
last MAX_BATCHES runs cover at least the last MAX_BATCHES batches, usually far more, and a
request may carry any number of batches.

A producer the table does not know (never seen, expired, or its batches deleted by
retention or compaction) is accepted with any sequence: the broker cannot tell a gap
from lost history, and Kafka makes the same choice."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from odradek.broker.metadata._fields import Fields
from odradek.records import BatchHeader
from odradek.records.batch import ATTR_TRANSACTIONAL

# Runs of batches remembered per producer (Kafka remembers 5 batches, its client's
# max.in.flight.requests.per.connection); a retried request is always inside the last one.
MAX_BATCHES = 5
SEQUENCE_MODULUS = 1 << 31
DEFAULT_EXPIRATION_MS = 24 * 3600 * 1000
STATE_VERSION = 1


def add_sequence(seq: int, n: int) -> int:
    """seq + n with int32 wrap-around (sequence numbers go from 2**31 - 1 back to 0)."""
    return (seq + n) % SEQUENCE_MODULUS


class SequenceError(Exception):
    """A batch the leader must refuse. `reason` is OUT_OF_ORDER_SEQUENCE, PRODUCER_FENCED
    or INVALID_RECORD."""

    def __init__(self, reason: str, message: str, metadata: dict[str, str]) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata = metadata


@dataclass(frozen=True, slots=True)
class BatchSeq:
    """Stored batches of a producer (one, or a run of consecutive ones): the first and last
    sequence and the offsets they took. Offsets -1: checked, not proposed yet."""

    first_seq: int
    last_seq: int
    base_offset: int
    last_offset: int


@dataclass(slots=True)
class ProducerEntry:
    epoch: int
    batches: list[BatchSeq] = field(default_factory=list)  # oldest first
    last_timestamp: int = -1

    def copy(self) -> ProducerEntry:
        return ProducerEntry(self.epoch, list(self.batches), self.last_timestamp)

    def add(self, epoch: int, batch: BatchSeq, timestamp: int) -> None:
        """Records a stored batch (after any check). A newer epoch starts afresh."""
        if epoch != self.epoch:
            self.epoch = epoch
            self.batches = []
        last = self.batches[-1] if self.batches else None
        if (last is not None and last.base_offset >= 0 and batch.base_offset >= 0
                and batch.base_offset == last.last_offset + 1
                and batch.first_seq == add_sequence(last.last_seq, 1)):
            self.batches[-1] = BatchSeq(last.first_seq, batch.last_seq, last.base_offset,
                                        batch.last_offset)
        else:
            self.batches.append(batch)
            if len(self.batches) > MAX_BATCHES:
                del self.batches[0]
        self.last_timestamp = max(self.last_timestamp, timestamp)

    def find(self, first_seq: int, last_seq: int) -> BatchSeq | None:
        """Where the batch with these sequences was stored, if it lies inside a run."""
        span = (last_seq - first_seq) % SEQUENCE_MODULUS
        for b in self.batches:
            start = (first_seq - b.first_seq) % SEQUENCE_MODULUS
            if start + span <= (b.last_seq - b.first_seq) % SEQUENCE_MODULUS:
                if b.base_offset < 0:
                    return b
                return BatchSeq(first_seq, last_seq, b.base_offset + start,
                                b.base_offset + start + span)
        return None


def fenced(producer_id: int, epoch: int, current: int) -> SequenceError:
    return SequenceError(
        "PRODUCER_FENCED", f"producer {producer_id} sent epoch {epoch} but epoch {current} "
        "has taken over: this producer instance was fenced by a newer one with the same "
        "producer name", {"producer_id": str(producer_id), "producer_epoch": str(epoch),
                          "current_epoch": str(current)})


def check_sequence(entry: ProducerEntry | None, producer_id: int, epoch: int, first_seq: int,
                   last_seq: int) -> BatchSeq | None:
    """The original batch when this one is a duplicate; None when it may be appended;
    SequenceError when it must be refused."""
    where = {"producer_id": str(producer_id), "producer_epoch": str(epoch),
             "base_sequence": str(first_seq)}
    if entry is None:
        return None
    if epoch < entry.epoch:
        raise fenced(producer_id, epoch, entry.epoch)
    if epoch > entry.epoch:
        if first_seq != 0:
            raise SequenceError(
                "OUT_OF_ORDER_SEQUENCE", f"producer {producer_id} started epoch {epoch} with "
                f"sequence {first_seq}; a new epoch must start at sequence 0", where)
        return None
    original = entry.find(first_seq, last_seq)
    if original is not None:
        return original
    if not entry.batches:
        return None
    expected = add_sequence(entry.batches[-1].last_seq, 1)
    if first_seq != expected:
        raise SequenceError(
            "OUT_OF_ORDER_SEQUENCE", f"producer {producer_id} (epoch {epoch}) sent sequence "
            f"{first_seq} but the partition expects {expected} (its last stored batch ended "
            f"at sequence {entry.batches[-1].last_seq}); earlier batches were lost or "
            "arrived out of order", {**where, "expected_sequence": str(expected)})
    return None


class ProducerStateTable:
    """Every producer's entry for one partition, built from the batches of the log below
    `end_offset`."""

    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}
        self.end_offset = 0

    def get(self, producer_id: int) -> ProducerEntry | None:
        return self.producers.get(producer_id)

    def record(self, producer_id: int, epoch: int, first_seq: int, base_offset: int,
               last_offset: int, timestamp: int) -> None:
        """A batch entered the log. Batches below end_offset were seen already (the
        leader's own entries are recorded once when stored). Its sequences span its
        offsets (baseSequence + lastOffsetDelta, as in Kafka: compaction may have removed
        records, never the offsets they span)."""
        if last_offset < self.end_offset:
            return
        self.end_offset = last_offset + 1
        if producer_id < 0:
            return
        entry = self.producers.get(producer_id)
        if entry is None:
            entry = self.producers[producer_id] = ProducerEntry(epoch)
        elif epoch < entry.epoch:
            return  # a fenced batch a leader let through: it does not move the state back
        entry.add(epoch, BatchSeq(first_seq, add_sequence(first_seq, last_offset - base_offset),
                                  base_offset, last_offset), timestamp)

    def skip_to(self, offset: int) -> None:
        self.end_offset = max(self.end_offset, offset)

    def expire(self, now_ms: int, expiration_ms: int) -> int:
        """Forgets producers whose last batch is older than expiration_ms; returns how many."""
        doomed = [pid for pid, e in self.producers.items()
                  if now_ms - e.last_timestamp > expiration_ms]
        for pid in doomed:
            del self.producers[pid]
        return len(doomed)

    def clear(self, offset: int) -> None:
        self.producers = {}
        self.end_offset = offset

    # -------------------------------------------------------------------- snapshots
    def encode(self) -> bytes:
        doc = {"version": STATE_VERSION, "end_offset": self.end_offset, "producers": [
            {"id": pid, "epoch": e.epoch, "last_timestamp": e.last_timestamp,
             "batches": [[b.first_seq, b.last_seq, b.base_offset, b.last_offset]
                         for b in e.batches]}
            for pid, e in sorted(self.producers.items())]}
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> ProducerStateTable:
        """The table `encode` wrote; ValueError on anything else."""
        try:
            doc: Any = json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"producer state is not valid JSON: {exc}") from None
        top = Fields("producer state", doc)
        if top.get_int("version") != STATE_VERSION:
            raise ValueError(f"producer state version {top.get_int('version')} is not "
                             f"supported (this broker reads version {STATE_VERSION})")
        table = cls()
        table.end_offset = top.get_int("end_offset")
        for raw in top.get_list("producers"):
            f = Fields("producer state entry", raw)
            batches = []
            for row in f.get_list("batches"):
                if (not isinstance(row, list) or len(row) != 4
                        or not all(isinstance(x, int) for x in row)):
                    raise ValueError(f"producer state batch {row!r} is not 4 integers")
                batches.append(BatchSeq(*row))
            table.producers[f.get_int("id")] = ProducerEntry(
                f.get_int("epoch"), batches[-MAX_BATCHES:], f.get_int("last_timestamp"))
        return table


class LeaderSequences:
    """The leader's view: the stored state plus the batches it proposed that are not
    stored yet (proposals reach the log a loop turn later, and another request may be
    checked in between)."""

    def __init__(self, table: Callable[[], ProducerStateTable],
                 current_epoch: Callable[[int], int | None] = lambda _: None) -> None:
        self._table = table
        # The epoch the metadata gave a named producer last: older ones are fenced here
        # even before the new instance writes to this partition.
        self._current_epoch = current_epoch
        # producer id -> (its entry with the in-flight batches added, their last offset)
        self._inflight: dict[int, tuple[ProducerEntry, int]] = {}

    def _entry(self, producer_id: int) -> ProducerEntry | None:
        pending = self._inflight.get(producer_id)
        return pending[0] if pending is not None else self._table().get(producer_id)

    def check(self, headers: Sequence[BatchHeader]) -> list[BatchSeq | None]:
        """For each batch of a request: the original when it is a duplicate, None when it
        is new. Duplicates may only come first (a retried request whose first batches were
        stored); the request is refused whole (SequenceError) if any batch must be."""
        scratch: dict[int, ProducerEntry] = {}
        out: list[BatchSeq | None] = []
        fresh = False
        for h in headers:
            pid = h.producer_id
            if pid < 0:
                fresh = True
                out.append(None)
                continue
            where = {"producer_id": str(pid)}
            if h.attributes & ATTR_TRANSACTIONAL:
                raise SequenceError("INVALID_RECORD", "transactional batches are not "
                                    "supported (idempotent batches are)", where)
            if h.producer_epoch < 0 or h.base_sequence < 0:
                raise SequenceError(
                    "INVALID_RECORD", f"batch of producer {pid} has epoch {h.producer_epoch} "
                    f"and base sequence {h.base_sequence}; an idempotent batch needs both "
                    "at least 0", where)
            latest = self._current_epoch(pid)
            if latest is not None and h.producer_epoch < latest:
                raise fenced(pid, h.producer_epoch, latest)
            entry = scratch.get(pid) or self._entry(pid)
            last_seq = add_sequence(h.base_sequence, h.last_offset_delta)
            original = check_sequence(entry, pid, h.producer_epoch, h.base_sequence, last_seq)
            if original is not None:
                if fresh or original.base_offset < 0:
                    raise SequenceError(
                        "OUT_OF_ORDER_SEQUENCE", f"producer {pid} repeated sequence "
                        f"{h.base_sequence} after a new batch in the same request", where)
                out.append(original)
                continue
            fresh = True
            grown = entry.copy() if entry is not None else ProducerEntry(h.producer_epoch)
            grown.add(h.producer_epoch, BatchSeq(h.base_sequence, last_seq, -1, -1),
                      h.max_timestamp)
            scratch[pid] = grown
            out.append(None)
        return out

    def proposed(self, headers: Sequence[BatchHeader], offsets: Sequence[int]) -> None:
        """The new batches of a checked request were proposed at these base offsets."""
        for h, base in zip(headers, offsets, strict=True):
            if h.producer_id < 0:
                continue
            entry = self._entry(h.producer_id)
            entry = entry.copy() if entry is not None else ProducerEntry(h.producer_epoch)
            last = base + h.last_offset_delta
            entry.add(h.producer_epoch, BatchSeq(
                h.base_sequence, add_sequence(h.base_sequence, h.last_offset_delta), base, last),
                h.max_timestamp)
            self._inflight[h.producer_id] = (entry, last)

    def stored(self, upto: int) -> None:
        """The log holds every offset up to `upto`: the table has those batches now."""
        if self._inflight:
            self._inflight = {pid: v for pid, v in self._inflight.items() if v[1] > upto}

    def clear(self) -> None:
        """Leadership was lost: proposals not stored may never be."""
        self._inflight = {}
