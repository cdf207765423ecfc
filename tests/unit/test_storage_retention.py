"""Retention: whole segments go by age (largest timestamp) and by total size."""

from __future__ import annotations

from pathlib import Path

from odradek.storage import LogConfig, OffsetOutOfRangeError, PartitionLog
from tests.unit.storage_util import Clock, batch, read_all, segment_files

DAY = 86_400_000


def test_retention_by_time(tmp_path: Path) -> None:
    clock = Clock(10 * DAY)
    config = LogConfig(segment_bytes=1024, retention_ms=DAY)
    log = PartitionLog.open(tmp_path / "p", config, clock=clock)
    for day in range(5):  # segments of one day each, largest timestamp = that day
        for _ in range(2):
            log.append(batch(b"x" * 300, ts=day * DAY))
    assert log.segment_count == 5
    clock.now = 3 * DAY  # days 0 and 1 are more than a day old, day 2 is exactly a day
    assert log.enforce_retention() == 2
    assert log.log_start_offset == 4 and log.segment_count == 3
    assert [r.offset for r in read_all(log)] == list(range(4, 10))
    try:
        log.read(0, 100)
        raise AssertionError("read below the log start should fail")
    except OffsetOutOfRangeError as e:
        assert "valid offsets are 4 to 10" in str(e)
    clock.now = 100 * DAY  # everything expired, but the active segment stays
    assert log.enforce_retention() == 2
    assert log.segment_count == 1 and log.log_start_offset == 8
    assert [p.name for p in segment_files(tmp_path / "p")] == ["00000000000000000008.log"]
    log.close()
    log = PartitionLog.open(tmp_path / "p", config, clock=clock)
    assert (log.log_start_offset, log.log_end_offset) == (8, 10)
    log.close()


def test_retention_by_size(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=1024, retention_bytes=2000)
    log = PartitionLog.open(tmp_path / "p", config, clock=Clock())
    one = len(batch(b"x" * 300))
    for _ in range(10):
        log.append(batch(b"x" * 300))
    sizes = [s.size for s in log.segments]
    assert sizes == [2 * one] * 5
    # 5 segments of 742 bytes: deleting two leaves 2226, deleting a third would leave
    # 1484, under the limit: Kafka's rule (only whole segments, never below the limit).
    assert log.enforce_retention() == 2
    assert log.size_bytes == 3 * 2 * one
    assert log.enforce_retention() == 0
    log.close()


def test_no_retention_without_delete_policy(tmp_path: Path) -> None:
    clock = Clock(100 * DAY)
    config = LogConfig(segment_bytes=1024, retention_ms=1, cleanup_policy=frozenset({"compact"}))
    log = PartitionLog.open(tmp_path / "p", config, clock=clock)
    for _ in range(6):
        log.append(batch(b"x" * 300, ts=0))
    assert log.enforce_retention() == 0
    log.update_config(LogConfig(segment_bytes=1024, retention_ms=1,
                                cleanup_policy=frozenset({"compact", "delete"})))
    assert log.enforce_retention() == 2
    log.close()


def test_unlimited_retention(tmp_path: Path) -> None:
    clock = Clock(100 * DAY)
    log = PartitionLog.open(tmp_path / "p", LogConfig(segment_bytes=1024, retention_ms=-1),
                            clock=clock)
    for _ in range(9):
        log.append(batch(b"x" * 300, ts=0))
    assert log.enforce_retention() == 0
    log.close()


def test_dropped_segments_are_renamed_then_removed_by_the_remover(tmp_path: Path) -> None:
    """Retention renames a dropped segment's files at once and leaves removing them to
    file_remover (the broker's worker thread); files a crash left are removed at open and
    never come back as segments."""
    clock = Clock(10 * DAY)
    config = LogConfig(segment_bytes=1024, retention_ms=DAY)
    log = PartitionLog.open(tmp_path / "p", config, clock=clock)
    handed: list[Path] = []
    log.file_remover = handed.extend  # removes nothing: as if the process died first
    for day in range(3):
        for _ in range(2):
            log.append(batch(b"x" * 300, ts=day * DAY))
    clock.now = 100 * DAY
    assert log.enforce_retention() == 2
    assert handed and all(p.name.endswith(".deleted") and p.exists() for p in handed)
    assert {p.name for p in handed} >= {"00000000000000000000.log.deleted",
                                         "00000000000000000002.log.deleted"}
    log._close_files()  # a crash: no clean shutdown
    log = PartitionLog.open(tmp_path / "p", config, clock=clock)
    assert not any(p.exists() for p in handed)
    assert (log.log_start_offset, log.log_end_offset) == (4, 6)
    assert log.enforce_retention() == 0
    log.close()
