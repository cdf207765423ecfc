"""A bit flipped at rest in a sealed segment after a clean shutdown: the clean start trusts
the segment (no scan), so PartitionLog.read must find it by its CRC and refuse it; and the
Raft storage cuts its log there and remembers the commit index it lost."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from odradek.broker.replication.log_storage import STATE_FILE, PartitionRaftStorage
from odradek.broker.replication.repair import CorruptionRepair
from odradek.raft import NO_INDEX, Entry, HardState
from odradek.records import iter_batches
from odradek.records.batch import first_corrupt
from odradek.storage import CorruptBatchError, PartitionLog
from tests.unit.storage_util import batch, read_all, segment_files
from tests.unit.test_storage_reset import CONFIG, fill


def flip(path: Path, nth_batch: int) -> int:
    """Flips a bit inside the CRC-covered part of the file's nth batch; its base offset."""
    raw = bytearray(path.read_bytes())
    pos, header = list(iter_batches(bytes(raw)))[nth_batch]
    raw[pos + 21 + (header.size - 21) // 2] ^= 0x04
    path.write_bytes(bytes(raw))
    return header.base_offset


def filled(d: Path) -> PartitionLog:
    log = fill(d, 60)
    log.close()  # cleanly: the next open trusts the sealed segments
    return log


def test_a_read_refuses_a_corrupt_batch_that_a_clean_start_trusted(tmp_path: Path) -> None:
    filled(tmp_path)
    first = segment_files(tmp_path)[0]
    bad = flip(first, 5)
    log = PartitionLog.open(tmp_path, CONFIG)  # clean: the segment is not scanned
    assert log.log_end_offset == 120
    seen: list[CorruptBatchError] = []
    log.corruption_observer = seen.append
    offset = 0
    while offset < bad:  # one batch a read: everything before the corrupt one is served
        offset = log.read(offset, 1).next_offset
    assert offset == bad
    for start in (bad, bad + 1, 0):  # the batch itself, inside it, or a read spanning it
        with pytest.raises(CorruptBatchError) as info:
            log.read(start, 1 << 20)
        assert info.value.offset == bad
        assert info.value.path == first
        assert "CRC" in info.value.detail
    assert [e.offset for e in seen] == [bad, bad, bad]
    assert log.read(bad, 1, verify=False).data  # only when asked not to check
    log.truncate_to(bad)
    assert log.log_end_offset == bad
    assert [r.value for r in read_all(log)][-1] == b"w%03d" % (bad // 2 - 1)
    log.close()


def test_an_unclean_start_still_cuts_a_corrupt_batch_at_recovery(tmp_path: Path) -> None:
    log = filled(tmp_path)
    (tmp_path / ".clean_shutdown").unlink()
    (tmp_path / "recovery-point").write_text("0\n")
    bad = flip(segment_files(tmp_path)[0], 5)
    log = PartitionLog.open(tmp_path, CONFIG)
    assert log.log_end_offset == bad
    log.close()


def test_a_start_that_trusts_no_segment_cuts_a_corrupt_sealed_batch(tmp_path: Path) -> None:
    """The metadata log's open: after a clean stop too, every segment is scanned."""
    filled(tmp_path)
    assert len(segment_files(tmp_path)) > 2
    bad = flip(segment_files(tmp_path)[0], 5)
    log = PartitionLog.open(tmp_path, CONFIG, trust_sealed=False)
    assert log.log_end_offset == bad
    assert len(segment_files(tmp_path)) == 1  # the later segments follow the corruption
    assert [r.value for r in read_all(log)][-1] == b"w%03d" % (bad // 2 - 1)
    log.close()


def raft_storage(d: Path) -> PartitionRaftStorage:
    return PartitionRaftStorage(PartitionLog.open(d, CONFIG), [1, 2, 3], clock=lambda: 0)


def written(d: Path, n: int = 40) -> None:
    st = raft_storage(d)
    for i in range(n):  # one append each, so that segments roll
        st.append([Entry(i, 1, 1 if i < 2 else 2, batch(b"e%03d" % i))])
    assert st.log.segment_count > 1
    st.set_hard_state(HardState(2, 1, n - 1))
    st.save(sync=True)
    st.log.close()


def test_raft_storage_cuts_a_corrupt_batch_and_remembers_the_lost_commit(
        tmp_path: Path) -> None:
    written(tmp_path)
    bad = flip(segment_files(tmp_path)[0], 3)
    st = raft_storage(tmp_path)
    assert st.lost_commit == NO_INDEX and st.last_index() == 39
    with pytest.raises(CorruptBatchError):
        st.entries(0, 40, 1 << 20)
    st.drop_corrupt(bad, commit=10)  # it held up to 39: it may have acknowledged them
    assert st.last_index() == bad - 1
    assert st.lost_commit == 39
    assert st.initial_state().commit == bad - 1  # the commit index stays a true one
    st.set_hard_state(HardState(2, None, bad - 1))
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert (saved["commit"], saved["lost"]) == (bad - 1, 39)
    st.log.close()
    st = raft_storage(tmp_path)  # a restart before the repair still knows
    assert st.lost_commit == 39
    for i in range(bad, 40):
        st.append([Entry(i, 1, 2, batch(b"r%03d" % i))])
    st.set_hard_state(HardState(2, None, 39))
    st.log.close()
    assert json.loads((tmp_path / STATE_FILE).read_text())["lost"] == NO_INDEX
    st = raft_storage(tmp_path)
    assert st.lost_commit == NO_INDEX
    st.log.close()


def test_raft_storage_cuts_a_corrupt_batch_its_load_scan_meets(tmp_path: Path) -> None:
    written(tmp_path)
    state = json.loads((tmp_path / STATE_FILE).read_text())
    state["scanned_to"], state["epochs"] = 0, []  # learnt from the log at load
    (tmp_path / STATE_FILE).write_text(json.dumps(state))
    bad = flip(segment_files(tmp_path)[0], 3)
    st = raft_storage(tmp_path)
    assert st.last_index() == bad - 1
    assert st.lost_commit == 39
    # The terms before the cut are learnt all the same (term 2 begins at offset 2).
    assert (st.term_of(1), st.term_of(bad - 1)) == (1, 2)
    st.log.close()


def test_a_commit_lost_to_the_recovery_cut_is_remembered_across_restarts(
        tmp_path: Path) -> None:
    """Recovery at open cut the log below the saved commit index. Before the fix the lost
    commit was known only until the next save (a new term, say): a restart after it, and
    before the repair, forgot it, and the replica voted again with its short log."""
    written(tmp_path)
    (tmp_path / ".clean_shutdown").unlink()
    (tmp_path / "recovery-point").write_text("0\n")
    bad = flip(segment_files(tmp_path)[0], 3)
    st = raft_storage(tmp_path)
    assert st.last_index() == bad - 1
    assert st.lost_commit == 39
    st.set_hard_state(HardState(3, None, bad - 1))  # saved: a new term
    st.log.close()
    st = raft_storage(tmp_path)
    assert st.lost_commit == 39
    st.log.close()


def test_first_corrupt_finds_the_first_bad_batch() -> None:
    good = batch(b"a", b"b") + batch(b"c")
    assert first_corrupt(good) is None
    assert first_corrupt(b"") is None
    second = len(batch(b"a", b"b"))
    flipped = bytearray(good)
    flipped[second + 40] ^= 1
    found = first_corrupt(bytes(flipped))
    assert found is not None and found[0] == second and found[1].reason == "CORRUPT_RECORD"
    found = first_corrupt(good[:-3])  # a torn tail is not a whole batch
    assert found is not None and found[0] == second


def test_the_scrub_reads_back_the_trusted_segments_and_reports_what_fails(
        tmp_path: Path) -> None:
    filled(tmp_path)
    bad = flip(segment_files(tmp_path)[1], 2)
    log = PartitionLog.open(tmp_path, CONFIG)  # clean: nothing scanned but the active one
    found: list[CorruptBatchError] = []
    log.corruption_observer = found.append
    partition = SimpleNamespace(log=log, closed=False, topic="t")
    repair = CorruptionRepair(None, None, lambda _: True, 1.0,  # type: ignore[arg-type]
                              scrub_bytes_per_s=1 << 30)
    asyncio.run(repair._scrub(partition))  # type: ignore[arg-type]
    assert [e.offset for e in found] == [bad]
    log.close()
