"""The broker's Raft state journal (odradek/broker/replication/state_journal.py): records
survive a reopen, a torn or corrupt tail is cut, damage to durable records is refused,
the newest state wins over the partition's own state file, compaction keeps the newest
record of each key and runs as a job of its own, and the commit index goes to the journal
instead of a rewrite of the state file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from odradek.broker import clock as broker_clock
from odradek.broker.replication import log_storage, state_journal
from odradek.broker.replication.host import RaftHost, SyncDone
from odradek.broker.replication.log_storage import PartitionRaftStorage
from odradek.broker.replication.state_journal import (
    JOURNAL_FILE,
    JournalCorruptError,
    StateJournal,
    encode_record,
)
from odradek.raft import Entry, EntryKind, HardState
from odradek.storage import LogConfig, PartitionLog


def test_records_survive_a_reopen_and_the_newest_per_key_wins(tmp_path: Path) -> None:
    journal = StateJournal(tmp_path)
    ticket = journal.append([("a/1", HardState(1, 2, 0)), ("b/1", HardState(3, None, 5))])
    journal.append([("a/1", HardState(2, 3, 4))])
    journal.sync(ticket + 1)
    journal.close()
    again = StateJournal(tmp_path)
    assert again.get("a/1") == HardState(2, 3, 4)
    assert again.get("b/1") == HardState(3, None, 5)
    assert again.get("c/1") is None
    again.close()


def test_one_fsync_covers_every_record_appended_before_it(tmp_path: Path) -> None:
    journal = StateJournal(tmp_path)
    tickets = [journal.append([(f"g{i}/t", HardState(1, 1, -1))]) for i in range(50)]
    for ticket in tickets:
        journal.sync(ticket)
    assert journal.fsyncs == 1
    journal.sync(journal.append([("g0/t", HardState(2, None, -1))]))
    assert journal.fsyncs == 2
    journal.close()


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_a_torn_tail_is_cut_and_appends_go_after_the_good_records(tmp_path: Path,
                                                                  cut: int) -> None:
    journal = StateJournal(tmp_path)
    journal.sync(journal.append([("a/1", HardState(1, 1, 0))]))
    journal.append([("a/1", HardState(2, 2, 0))])  # never fsynced: torn by the power loss
    journal.close()
    path = tmp_path / JOURNAL_FILE
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    again = StateJournal(tmp_path)
    assert again.get("a/1") == HardState(1, 1, 0)
    again.sync(again.append([("a/1", HardState(3, 1, 0))]))
    again.close()
    assert StateJournal(tmp_path).get("a/1") == HardState(3, 1, 0)


def test_a_crc_error_in_the_unsynced_tail_is_cut(tmp_path: Path) -> None:
    journal = StateJournal(tmp_path)
    journal.sync(journal.append([("a/1", HardState(1, 1, 0))]))
    size = (tmp_path / JOURNAL_FILE).stat().st_size
    # Two records written after the last fsync; the first is damaged, the second is
    # intact but says (durable seq) that the first was not yet on disk.
    journal.append([("a/1", HardState(2, 2, 0))])
    journal.append([("a/1", HardState(3, 3, 0))])
    journal.close()
    flip(tmp_path / JOURNAL_FILE, size + 20)
    again = StateJournal(tmp_path)
    assert again.get("a/1") == HardState(1, 1, 0)
    assert (tmp_path / JOURNAL_FILE).stat().st_size == size
    again.close()


def test_damage_to_a_durable_record_is_refused(tmp_path: Path) -> None:
    journal = StateJournal(tmp_path)
    journal.sync(journal.append([("a/1", HardState(1, 1, 0))]))
    journal.sync(journal.append([("b/1", HardState(1, 2, 0))]))  # says record 1 is durable
    journal.close()
    flip(tmp_path / JOURNAL_FILE, 20)  # inside record 1
    with pytest.raises(JournalCorruptError, match="durable"):
        StateJournal(tmp_path)


def test_compaction_keeps_the_newest_record_of_each_key(tmp_path: Path) -> None:
    journal = StateJournal(tmp_path, compact_bytes=2048)
    for term in range(1, 200):
        journal.sync(journal.append([("a/1", HardState(term, 1, term)),
                                     ("b/1", HardState(term, 2, 0))]))
        journal.compact_if_due()
    assert not journal.compaction_due
    journal.forget("b/1")
    for term in range(200, 260):
        journal.sync(journal.append([("a/1", HardState(term, 1, term))]))
        journal.compact_if_due()
    size = (tmp_path / JOURNAL_FILE).stat().st_size
    assert size <= 2048 + 200  # rewritten, not 259 rounds of records
    journal.close()
    again = StateJournal(tmp_path)
    assert again.get("a/1") == HardState(259, 1, 259)
    assert again.get("b/1") is None
    assert not (tmp_path / "raft-states.tmp").exists()
    again.close()


def test_records_appended_during_a_compaction_are_kept(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    journal = StateJournal(tmp_path, compact_bytes=0)
    tickets: list[int] = []
    real = state_journal.fsync_dir

    def append_meanwhile(directory: Path) -> None:
        # The loop appends while a worker compacts (between the rename and the swap).
        if not tickets:
            tickets.append(journal.append([("b/1", HardState(4, 4, 0))]))
        real(directory)

    monkeypatch.setattr(state_journal, "fsync_dir", append_meanwhile)
    journal.sync(journal.append([("a/1", HardState(1, 1, i)) for i in range(10)]))
    journal.compact_if_due()
    monkeypatch.setattr(state_journal, "fsync_dir", real)
    assert tickets
    journal.sync(tickets[0])
    journal.close()
    again = StateJournal(tmp_path)
    assert again.get("a/1") == HardState(1, 1, 9)
    assert again.get("b/1") == HardState(4, 4, 0)
    again.close()


def test_a_record_that_is_not_a_record_is_refused_at_decode(tmp_path: Path) -> None:
    record = encode_record(1, 0, "a/1", HardState(1, None, -1))
    (tmp_path / JOURNAL_FILE).write_bytes(record + b"\0" * 64)  # zeros after a power loss
    journal = StateJournal(tmp_path)
    assert journal.get("a/1") == HardState(1, None, -1)
    assert (tmp_path / JOURNAL_FILE).stat().st_size == len(record)
    journal.close()


def test_the_partition_storage_loads_the_newer_of_file_and_journal(tmp_path: Path) -> None:
    config = LogConfig()
    plog = PartitionLog.open(tmp_path / "t-0", config)
    journal = StateJournal(tmp_path)
    storage = PartitionRaftStorage(plog, [1, 2, 3], sync_behind=True, journal=journal,
                                   journal_key="t-0/id")
    storage.set_hard_state(HardState(5, 2, -1))  # a vote: journaled, not in the file
    sync = storage.take_sync()
    assert sync is not None
    sync()
    assert not storage.path.exists()
    storage.save(sync=True)  # e.g. a truncation's write-ahead save: term 5 in the file too
    storage.set_hard_state(HardState(6, None, -1))
    sync = storage.take_sync()
    assert sync is not None
    sync()
    for segment in plog.segments:
        segment.close()
    journal.close()
    journal = StateJournal(tmp_path)
    reopened = PartitionRaftStorage(PartitionLog.open(tmp_path / "t-0", config), [1, 2, 3],
                                    sync_behind=True, journal=journal, journal_key="t-0/id")
    assert reopened.initial_state() == HardState(6, None, -1)
    # A record of another topic of the same name (another topic id) does not apply.
    other = PartitionRaftStorage(PartitionLog.open(tmp_path / "t-0b", config), [1, 2, 3],
                                 sync_behind=True, journal=journal, journal_key="t-0/other")
    assert other.initial_state() == HardState(0, None, -1)
    journal.close()


class StepClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


def test_commit_indexes_go_to_the_journal_and_the_state_file_is_a_rare_cache(
        tmp_path: Path) -> None:
    clock = StepClock()
    previous = broker_clock.set_clock(clock)
    try:
        plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
        journal = StateJournal(tmp_path)
        storage = PartitionRaftStorage(plog, [1, 2, 3], sync_behind=True, journal=journal,
                                       journal_key="t-0/id")
        storage.append([Entry(0, 1, 1, b"", EntryKind.NOOP)])
        storage.set_hard_state(HardState(1, 1, -1))
        sync = storage.take_sync()
        assert sync is not None
        sync()
        for commit in range(0, 10):  # a second apart: each one is saved
            clock.now += log_storage.COMMIT_SAVE_INTERVAL_S
            storage.append([Entry(commit + 1, 1, 1, b"", EntryKind.NOOP)])
            storage.set_hard_state(HardState(1, 1, commit))
        assert journal.get("t-0/id") == HardState(1, 1, 9)
        assert not storage.path.exists()  # no file rewritten per commit index
        clock.now += log_storage.STATE_CACHE_INTERVAL_S
        storage.append([Entry(11, 1, 1, b"", EntryKind.NOOP)])
        storage.set_hard_state(HardState(1, 1, 10))
        assert storage.path.exists()  # the cache of what the log holds, once in a while
        saved = storage.path.stat().st_mtime_ns, storage.path.read_text()
        clock.now += log_storage.STATE_CACHE_INTERVAL_S
        storage.set_hard_state(HardState(1, 1, 11))  # nothing new in the log
        assert (storage.path.stat().st_mtime_ns, storage.path.read_text()) == saved
        plog.close()
        journal.close()
        journal = StateJournal(tmp_path)
        reopened = PartitionRaftStorage(PartitionLog.open(tmp_path / "t-0", LogConfig()),
                                        [1, 2, 3], sync_behind=True, journal=journal,
                                        journal_key="t-0/id")
        assert reopened.initial_state() == HardState(1, 1, 11)
        journal.close()
    finally:
        broker_clock.set_clock(previous)


class HeldSyncer:
    def __init__(self) -> None:
        self.jobs: list[tuple[list[Callable[[], None]], SyncDone]] = []

    def submit(self, syncs: list[Callable[[], None]], done: SyncDone) -> None:
        self.jobs.append((syncs, done))

    def run(self) -> None:
        jobs, self.jobs = self.jobs, []
        for syncs, done in jobs:
            done([run_one(sync) for sync in syncs])


def run_one(sync: Callable[[], None]) -> BaseException | None:
    try:
        sync()
    except Exception as exc:
        return exc
    return None


def test_the_host_compacts_the_journal_in_a_job_of_its_own(tmp_path: Path) -> None:
    syncer = HeldSyncer()
    journal = StateJournal(tmp_path, compact_bytes=1024)
    host = RaftHost(0, lambda *_: None, syncer=syncer, journal=journal)
    for commit in range(100):  # commit indexes only: nothing ever calls sync
        journal.append([("a/1", HardState(1, 1, commit))])
    assert journal.compaction_due
    host.process()
    host.process()
    assert len(syncer.jobs) == 1  # one at a time
    syncer.run()
    assert not journal.compaction_due
    assert (tmp_path / JOURNAL_FILE).stat().st_size < 1024
    host.process()
    assert not syncer.jobs
    journal.close()
    assert StateJournal(tmp_path).get("a/1") == HardState(1, 1, 99)


def flip(path: Path, pos: int) -> None:
    data = bytearray(path.read_bytes())
    data[pos] ^= 0x10
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
