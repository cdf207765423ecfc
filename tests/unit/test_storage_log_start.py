"""advance_start (Kafka's DeleteRecords): the log start offset moves inside a segment, the
segments wholly below it go, reads below it are out of range, and it survives a restart
(clean or not) and a reset."""

from __future__ import annotations

from pathlib import Path

import pytest

from odradek.storage import LogConfig, OffsetOutOfRangeError, PartitionLog
from tests.unit.storage_util import Clock, batch, read_all, segment_files

CONFIG = LogConfig(segment_bytes=1024)


def _filled(path: Path, batches: int = 10) -> PartitionLog:
    log = PartitionLog.open(path, CONFIG, clock=Clock())
    for _ in range(batches):  # two 300-byte batches a segment: bases 0, 2, 4, 6, 8
        log.append(batch(b"x" * 300))
    return log


def test_advance_inside_a_segment_deletes_only_whole_segments_below(tmp_path: Path) -> None:
    log = _filled(tmp_path / "p")
    assert log.advance_start(5) == 5
    assert log.log_start_offset == 5
    assert [p.name for p in segment_files(tmp_path / "p")] == [
        "00000000000000000004.log", "00000000000000000006.log", "00000000000000000008.log"]
    with pytest.raises(OffsetOutOfRangeError, match="valid offsets are 5 to 10"):
        log.read(4, 100)
    assert [r.offset for r in read_all(log)] == list(range(5, 10))
    log.close()


def test_an_offset_at_or_below_the_start_changes_nothing(tmp_path: Path) -> None:
    log = _filled(tmp_path / "p")
    assert log.advance_start(3) == 3
    assert log.advance_start(2) == 3
    assert log.advance_start(3) == 3
    assert log.segment_count == 4
    log.close()


def test_past_the_log_end_is_refused(tmp_path: Path) -> None:
    log = _filled(tmp_path / "p")
    with pytest.raises(OffsetOutOfRangeError, match="offset 11 is out of range"):
        log.advance_start(11)
    assert log.log_start_offset == 0
    log.close()


def test_to_the_log_end_rolls_and_empties_the_log(tmp_path: Path) -> None:
    log = _filled(tmp_path / "p")
    assert log.advance_start(10) == 10
    assert (log.log_start_offset, log.log_end_offset, log.segment_count) == (10, 10, 1)
    assert [p.name for p in segment_files(tmp_path / "p")] == ["00000000000000000010.log"]
    log.append(batch(b"after"))
    assert [r.value for r in read_all(log)] == [b"after"]
    log.close()


@pytest.mark.parametrize("clean", [True, False])
def test_the_start_survives_a_restart(tmp_path: Path, clean: bool) -> None:
    log = _filled(tmp_path / "p")
    log.advance_start(7)
    if clean:
        log.close()
    else:
        log.flush()  # a killed process: no close, no clean-shutdown marker
    log = PartitionLog.open(tmp_path / "p", CONFIG, clock=Clock())
    assert (log.log_start_offset, log.log_end_offset) == (7, 10)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(6, 100)
    log.close()


def test_retention_past_the_start_takes_over(tmp_path: Path) -> None:
    log = _filled(tmp_path / "p")
    log.advance_start(3)
    log.delete_segments_below(6)
    assert log.log_start_offset == 6
    log.close()


def test_truncation_and_reset_below_the_start_move_it_down(tmp_path: Path) -> None:
    log = _filled(tmp_path / "p")
    log.advance_start(5)
    log.truncate_to(4)  # the whole log goes; it starts again where it was cut
    assert (log.log_start_offset, log.log_end_offset) == (4, 4)
    log.close()
    log = _filled(tmp_path / "q")
    log.advance_start(5)
    log.reset_to(3)
    log.close()
    log = PartitionLog.open(tmp_path / "q", CONFIG, clock=Clock())
    assert (log.log_start_offset, log.log_end_offset) == (3, 3)
    log.close()


def test_an_advance_cut_short_by_a_crash_is_finished_at_open(tmp_path: Path) -> None:
    log = _filled(tmp_path / "p")
    log.flush()
    # The start is made durable first; a crash then left the segments below it.
    (tmp_path / "p" / "log-start-offset").write_text("7\n")
    log = PartitionLog.open(tmp_path / "p", CONFIG, clock=Clock())
    assert log.log_start_offset == 7
    assert [p.name for p in segment_files(tmp_path / "p")] == [
        "00000000000000000006.log", "00000000000000000008.log"]
    log.close()
