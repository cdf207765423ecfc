"""Idempotent-producer sequence state: the checks (duplicates, gaps, fencing, wrap-around),
the leader's view with batches in flight, a model test, and the state kept with the log
(rebuilt at open, from a snapshot file or a scan, and after truncation)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.broker.replication.log_storage import PartitionRaftStorage
from odradek.broker.replication.producer_log import SNAPSHOT_FILE
from odradek.broker.replication.producer_state import (
    MAX_BATCHES,
    BatchSeq,
    LeaderSequences,
    ProducerEntry,
    ProducerStateTable,
    SequenceError,
    add_sequence,
    check_sequence,
)
from odradek.raft import Entry
from odradek.records import BatchBuilder, parse_header
from odradek.storage import LogConfig, PartitionLog

TS = 1_700_000_000_000


def idem_batch(pid: int, epoch: int, seq: int, n: int = 1, ts: int = TS) -> bytes:
    builder = BatchBuilder(producer_id=pid, producer_epoch=epoch, base_sequence=seq)
    for i in range(n):
        builder.append(ts, b"k", b"v%d-%d" % (seq, i))
    return builder.build()


def entry_with(epoch: int, *batches: tuple[int, int, int]) -> ProducerEntry:
    e = ProducerEntry(epoch)
    for first, last, base in batches:
        e.add(epoch, BatchSeq(first, last, base, base + last - first), TS)
    return e


# --- check_sequence --------------------------------------------------------------------

def test_unknown_producer_is_accepted_with_any_sequence() -> None:
    assert check_sequence(None, 7, 0, 12345, 12345) is None


def test_retry_of_a_remembered_batch_returns_the_original() -> None:
    e = entry_with(0, (0, 4, 100), (5, 9, 105))
    assert check_sequence(e, 7, 0, 0, 4) == BatchSeq(0, 4, 100, 104)
    assert check_sequence(e, 7, 0, 5, 9) == BatchSeq(5, 9, 105, 109)
    assert check_sequence(e, 7, 0, 10, 12) is None


@pytest.mark.parametrize("first", [11, 20])
def test_gaps_are_out_of_order(first: int) -> None:
    e = entry_with(0, (0, 4, 100), (5, 9, 105))
    with pytest.raises(SequenceError, match="expects 10") as info:
        check_sequence(e, 7, 0, first, first)
    assert info.value.reason == "OUT_OF_ORDER_SEQUENCE"
    assert info.value.metadata["expected_sequence"] == "10"


def test_sequences_older_than_the_remembered_runs_are_out_of_order() -> None:
    e = ProducerEntry(0)
    for i in range(MAX_BATCHES + 2):
        e.add(0, BatchSeq(i, i, 2 * i, 2 * i), TS)
    with pytest.raises(SequenceError, match="expects 7"):
        check_sequence(e, 7, 0, 1, 1)
    assert check_sequence(e, 7, 0, 3, 3) == BatchSeq(3, 3, 6, 6)


def test_older_epoch_is_fenced_and_newer_epoch_starts_at_zero() -> None:
    e = entry_with(3, (0, 0, 1))
    with pytest.raises(SequenceError) as info:
        check_sequence(e, 7, 2, 1, 1)
    assert info.value.reason == "PRODUCER_FENCED"
    assert check_sequence(e, 7, 4, 0, 0) is None
    with pytest.raises(SequenceError, match="must start at sequence 0"):
        check_sequence(e, 7, 4, 1, 1)


def test_sequences_wrap_around() -> None:
    top = 2**31 - 1
    assert add_sequence(top, 1) == 0
    e = entry_with(0, (top - 1, top, 50))
    assert check_sequence(e, 7, 0, 0, 3) is None
    with pytest.raises(SequenceError):
        check_sequence(e, 7, 0, 1, 3)


def test_only_the_last_runs_are_remembered() -> None:
    e = ProducerEntry(0)
    for i in range(MAX_BATCHES + 2):
        e.add(0, BatchSeq(i, i, 2 * i, 2 * i), TS)  # another producer's batch in between
    assert [b.first_seq for b in e.batches] == list(range(2, MAX_BATCHES + 2))


def test_consecutive_batches_form_one_run_and_any_batch_inside_is_found() -> None:
    e = ProducerEntry(0)
    for first in range(0, 30, 3):
        e.add(0, BatchSeq(first, first + 2, 100 + first, 102 + first), TS)
    assert e.batches == [BatchSeq(0, 29, 100, 129)]
    assert e.find(6, 8) == BatchSeq(6, 8, 106, 108)
    assert e.find(28, 30) is None
    e.add(0, BatchSeq(30, 30, 500, 500), TS)  # not at the next offset: a new run
    assert len(e.batches) == 2 and e.find(30, 30) == BatchSeq(30, 30, 500, 500)


def test_expiry_forgets_idle_producers() -> None:
    table = ProducerStateTable()
    table.record(1, 0, 0, 0, 0, TS)
    table.record(2, 0, 0, 1, 1, TS + 10_000)
    assert table.expire(TS + 10_500, 1000) == 1
    assert list(table.producers) == [2]


# --- the leader's view -----------------------------------------------------------------

def headers(*batches: bytes) -> list:  # type: ignore[type-arg]
    return [parse_header(b) for b in batches]


def test_in_flight_batches_count_before_they_are_stored() -> None:
    table = ProducerStateTable()
    leader = LeaderSequences(lambda: table)
    first = headers(idem_batch(5, 0, 0, n=3))
    assert leader.check(first) == [None]
    leader.proposed(first, [10])
    # Not stored yet: the retry is a duplicate of the in-flight batch, a gap is refused.
    assert leader.check(first) == [BatchSeq(0, 2, 10, 12)]
    with pytest.raises(SequenceError):
        leader.check(headers(idem_batch(5, 0, 4)))
    second = headers(idem_batch(5, 0, 3))
    assert leader.check(second) == [None]
    table.record(5, 0, 0, 10, 12, TS)
    leader.stored(12)
    assert leader.check(second) == [None]
    leader.clear()
    assert leader.check(first) == [BatchSeq(0, 2, 10, 12)]


def test_a_request_may_start_with_duplicates_then_go_on() -> None:
    table = ProducerStateTable()
    table.record(5, 0, 0, 0, 0, TS)
    leader = LeaderSequences(lambda: table)
    request = headers(idem_batch(5, 0, 0), idem_batch(5, 0, 1), idem_batch(-1, -1, -1))
    assert leader.check(request) == [BatchSeq(0, 0, 0, 0), None, None]
    with pytest.raises(SequenceError, match="after a new batch"):
        leader.check(headers(idem_batch(5, 0, 1), idem_batch(5, 0, 0)))


def test_epochs_the_metadata_moved_past_are_fenced_before_the_partition_sees_them() -> None:
    table = ProducerStateTable()
    table.record(5, 0, 0, 0, 0, TS)
    leader = LeaderSequences(lambda: table, {5: 1}.get)
    with pytest.raises(SequenceError) as info:
        leader.check(headers(idem_batch(5, 0, 1)))
    assert info.value.reason == "PRODUCER_FENCED"
    assert leader.check(headers(idem_batch(5, 1, 0))) == [None]


@pytest.mark.parametrize("batch", [idem_batch(5, -1, 0), idem_batch(5, 0, -1)])
def test_idempotent_batches_need_epoch_and_sequence(batch: bytes) -> None:
    with pytest.raises(SequenceError) as info:
        LeaderSequences(ProducerStateTable).check(headers(batch))
    assert info.value.reason == "INVALID_RECORD"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 12), st.sampled_from(["store", "other", "snapshot"])),
                max_size=60))
def test_model_every_batch_is_stored_once_in_order(actions: list[int | str]) -> None:
    """Producer 1 sends batch i (sequence i) any number of times, in any order, while
    producer 2's batches sometimes come in between; the state must store each batch of
    producer 1 once, in sequence order, and answer retries with the first offsets."""
    table = ProducerStateTable()
    leader = LeaderSequences(lambda: table)
    log: list[tuple[int, int]] = []  # (producer, sequence) at each offset
    stored = 0  # offsets below this are in the table; the rest are in flight

    def remembered() -> dict[int, int]:
        """Sequence -> offset over producer 1's last MAX_BATCHES runs."""
        runs: list[dict[int, int]] = []
        for offset, (pid, seq) in enumerate(log):
            if pid != 1:
                continue
            prev = log[offset - 1] if offset else None
            if prev is None or prev[0] != 1 or prev[1] + 1 != seq:
                runs.append({})
            runs[-1][seq] = offset
        return {k: v for run in runs[-MAX_BATCHES:] for k, v in run.items()}

    for action in actions:
        if action == "store":
            for offset in range(stored, len(log)):
                pid, seq = log[offset]
                table.record(pid, 0, seq, offset, offset, TS)
            if len(log) > stored:
                leader.stored(len(log) - 1)
            stored = len(log)
            continue
        if action == "snapshot":
            table = ProducerStateTable.decode(table.encode())
            continue
        others = sum(1 for p, _ in log if p == 2)
        pid, seq = (2, others) if action == "other" else (1, int(action))
        mine = [s for p, s in log if p == 1]
        known = remembered()
        try:
            (original,) = leader.check(headers(idem_batch(pid, 0, seq)))
        except SequenceError:
            assert pid == 1 and mine and seq not in known and seq != mine[-1] + 1
            continue
        if original is None:
            assert pid == 2 or not mine or seq == mine[-1] + 1
            log.append((pid, seq))
            leader.proposed(headers(idem_batch(pid, 0, seq)), [len(log) - 1])
        else:
            assert pid == 1 and original.base_offset == known[seq]
    mine = [s for p, s in log if p == 1]
    assert mine == list(range(mine[0], mine[0] + len(mine))) if mine else True


# --- kept with the log -----------------------------------------------------------------

CONFIG = LogConfig(segment_bytes=2048, index_interval_bytes=100)


def open_storage(d: Path) -> PartitionRaftStorage:
    return PartitionRaftStorage(PartitionLog.open(d, CONFIG), [1], clock=lambda: TS)


def append(st_: PartitionRaftStorage, data: bytes, term: int = 1) -> None:
    index = st_.last_index() + 1
    count = parse_header(data).record_count
    st_.append([Entry(index, count, term, data)])


def fill(st_: PartitionRaftStorage, pids: range, rounds: int) -> None:
    for r in range(rounds):
        for pid in pids:
            append(st_, idem_batch(pid, 0, r * 2, n=2))


def state(st_: PartitionRaftStorage) -> bytes:
    return st_.producers.table.encode()


def test_state_is_kept_as_batches_are_stored_and_survives_reopen(tmp_path: Path) -> None:
    st_ = open_storage(tmp_path)
    fill(st_, range(3), 20)
    assert st_.log.segment_count > 1  # rolled: a snapshot was written
    assert (tmp_path / SNAPSHOT_FILE).exists()
    entry = st_.producers.table.get(2)
    assert entry is not None and entry.batches[-1].last_seq == 39
    before = state(st_)
    st_.log.close()
    assert state(open_storage(tmp_path)) == before  # from the snapshot plus a scan
    (tmp_path / SNAPSHOT_FILE).unlink()
    assert state(open_storage(tmp_path)) == before  # from a full scan


def test_snapshot_past_the_log_end_is_ignored(tmp_path: Path) -> None:
    st_ = open_storage(tmp_path)
    fill(st_, range(2), 5)
    st_.producers.save()
    before = state(st_)
    end = st_.log.log_end_offset
    st_.log.truncate_to(end - 2)  # a crash lost the tail, the snapshot did not
    st_.log.close()
    reopened = open_storage(tmp_path)
    assert reopened.producers.table.end_offset == end - 2
    assert state(reopened) != before
    entry = reopened.producers.table.get(1)
    assert entry is not None and entry.batches[-1].last_seq == 7


def test_truncation_rolls_the_state_back(tmp_path: Path) -> None:
    st_ = open_storage(tmp_path)
    fill(st_, range(2), 30)
    cut = st_.log.log_end_offset - 8  # the last two rounds
    st_.truncate(cut)
    for pid in range(2):
        entry = st_.producers.table.get(pid)
        assert entry is not None and entry.batches[-1].last_seq == 55
    assert st_.producers.table.end_offset == cut
    # Far back, below the snapshot: the snapshot goes and the state is scanned again.
    st_.truncate(4)
    assert not (tmp_path / SNAPSHOT_FILE).exists()
    entry = st_.producers.table.get(1)
    assert entry is not None and entry.batches[-1].last_seq == 1  # round 0 only
    append(st_, idem_batch(1, 0, 2, n=2))
    st_.log.close()
    entry = open_storage(tmp_path).producers.table.get(1)
    assert entry is not None and entry.batches[-1].last_seq == 3


def test_control_and_plain_batches_are_skipped(tmp_path: Path) -> None:
    st_ = open_storage(tmp_path)
    append(st_, idem_batch(-1, -1, -1, n=3))
    append(st_, idem_batch(9, 0, 0))
    assert list(st_.producers.table.producers) == [9]
    assert st_.producers.table.end_offset == 4


def test_expiry_counts_from_when_the_replica_stored_the_batch(tmp_path: Path) -> None:
    now = [TS]
    st_ = PartitionRaftStorage(PartitionLog.open(tmp_path, CONFIG), [1], clock=lambda: now[0],
                               producer_id_expiration_ms=3_600_000)
    append(st_, idem_batch(1, 0, 0, ts=0))  # an event time from 1970: kept all the same
    now[0] += 120_000
    append(st_, idem_batch(2, 0, 0))
    assert sorted(st_.producers.table.producers) == [1, 2]
    now[0] += 3_500_000  # producer 1 idle past the hour, producer 2 not
    append(st_, idem_batch(3, 0, 0))
    assert sorted(st_.producers.table.producers) == [2, 3]
