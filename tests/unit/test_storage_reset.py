"""PartitionLog.reset_to (a Raft follower installing a snapshot) and its crash safety, and
PartitionRaftStorage's snapshot install and compaction refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from odradek.broker.replication.log_storage import PartitionRaftStorage
from odradek.raft import ConfigState, Entry, HardState, Snapshot, SnapshotMeta
from odradek.storage import LogConfig, PartitionLog
from odradek.storage.log import RESET_MARKER
from odradek.storage.segment import LogSegment
from tests.unit.storage_util import batch, read_all, segment_files

CONFIG = LogConfig(segment_bytes=1024, index_interval_bytes=100)


def fill(d: Path, n: int) -> PartitionLog:
    log = PartitionLog.open(d, CONFIG)
    for i in range(n):
        log.append(batch(b"v%03d" % i, b"w%03d" % i))
    log.flush()
    return log


def test_reset_to_drops_everything_and_starts_at_offset(tmp_path: Path) -> None:
    log = fill(tmp_path, 60)
    assert log.segment_count > 2
    log.reset_to(500)
    assert (log.log_start_offset, log.log_end_offset, log.segment_count) == (500, 500, 1)
    assert not (tmp_path / RESET_MARKER).exists()
    assert [p.name for p in segment_files(tmp_path)] == ["00000000000000000500.log"]
    log.append(batch(b"after"))
    assert [r.offset for r in read_all(log)] == [500]
    log.close()
    log = PartitionLog.open(tmp_path, CONFIG)
    assert (log.log_start_offset, log.log_end_offset) == (500, 501)
    assert [r.value for r in read_all(log)] == [b"after"]
    log.close()


def test_reset_to_below_the_old_start_and_into_an_existing_base(tmp_path: Path) -> None:
    log = fill(tmp_path, 30)
    log.reset_to(0)  # same base offset as the first old segment
    assert (log.log_start_offset, log.log_end_offset) == (0, 0)
    log.append(batch(b"x"))
    log._close_files()  # crash: no clean shutdown
    log = PartitionLog.open(tmp_path, CONFIG)
    assert [r.value for r in read_all(log)] == [b"x"]
    log.close()


@pytest.mark.parametrize("stage", ["marker_only", "some_deleted", "new_segment_made"])
def test_open_completes_an_interrupted_reset(tmp_path: Path, stage: str) -> None:
    log = fill(tmp_path, 60)
    bases = [s.base_offset for s in log.segments]
    log._close_files()  # the crash happened in the middle of reset_to(700)
    (tmp_path / RESET_MARKER).write_text("700\n")
    if stage in ("some_deleted", "new_segment_made"):
        for base in bases[:2]:
            LogSegment(tmp_path, base).delete_files()
    if stage == "new_segment_made":
        LogSegment(tmp_path, 700, truncate=True).close()
    log = PartitionLog.open(tmp_path, CONFIG)
    assert (log.log_start_offset, log.log_end_offset, log.segment_count) == (700, 700, 1)
    assert not (tmp_path / RESET_MARKER).exists()
    log.append(batch(b"y"))
    log._close_files()
    log = PartitionLog.open(tmp_path, CONFIG)  # the marker is gone: no second reset
    assert [(r.offset, r.value) for r in read_all(log)] == [(700, b"y")]
    log.close()


def test_reset_to_rejects_negative_offsets(tmp_path: Path) -> None:
    log = fill(tmp_path, 1)
    with pytest.raises(ValueError):
        log.reset_to(-1)
    log.close()


def _storage(d: Path) -> PartitionRaftStorage:
    return PartitionRaftStorage(PartitionLog.open(d, CONFIG), [1, 2, 3], clock=lambda: 0)


def test_apply_snapshot_keeps_the_snapshot_term_across_a_restart(tmp_path: Path) -> None:
    st = _storage(tmp_path)
    st.append([Entry(0, 1, 1, batch(b"a")), Entry(1, 1, 1, batch(b"b"))])
    st.set_hard_state(HardState(3, 2, 1))
    snap = Snapshot(SnapshotMeta(99, 3, ConfigState(frozenset({1, 2, 3, 4}))))
    st.apply_snapshot(snap)
    meta = st.snapshot_meta()
    assert (meta.index, meta.term, meta.config.voters) == (99, 3, frozenset({1, 2, 3, 4}))
    assert (st.first_index(), st.last_index(), st.term(99)) == (100, 99, 3)
    st.append([Entry(100, 2, 3, batch(b"c", b"d")), Entry(102, 1, 4, batch(b"e"))])
    assert [st.term(i) for i in (99, 100, 101, 102)] == [3, 3, 3, 4]
    st.log._close_files()  # crash
    st = _storage(tmp_path)
    assert st.snapshot_meta().term == 3
    assert [st.term(i) for i in (99, 100, 101, 102)] == [3, 3, 3, 4]
    assert st.initial_state() == HardState(3, 2, 99)
    st.log.close()


def test_a_crash_during_apply_snapshot_is_completed_at_load(tmp_path: Path) -> None:
    st = _storage(tmp_path)
    st.append([Entry(0, 1, 1, batch(b"a"))])
    real_reset = PartitionLog.reset_to

    def crash_before_reset(self: PartitionLog, offset: int) -> None:
        raise RuntimeError("power loss")

    PartitionLog.reset_to = crash_before_reset  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError):
            st.apply_snapshot(Snapshot(SnapshotMeta(49, 2, ConfigState(frozenset({1, 2, 3})))))
    finally:
        PartitionLog.reset_to = real_reset  # type: ignore[method-assign]
    st.log._close_files()
    st = _storage(tmp_path)
    assert (st.first_index(), st.last_index(), st.snapshot_meta().term) == (50, 49, 2)
    assert st.state.reset_to is None
    st.log.close()


def test_compact_is_refused(tmp_path: Path) -> None:
    st = _storage(tmp_path)
    st.append([Entry(0, 1, 1, batch(b"a"))])
    with pytest.raises(ValueError, match="retention"):
        st.compact(0, b"")
    st.log.close()
