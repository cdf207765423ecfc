"""Recovery at open: torn and corrupt tails, garbage, broken indexes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from odradek.records.batch import set_offset_and_epoch
from odradek.storage import LogConfig, PartitionLog
from tests.unit.storage_util import batch, read_all, segment_files

CONFIG = LogConfig(segment_bytes=2048, index_interval_bytes=100)
BATCH = len(batch(b"v000"))


def crash(log: PartitionLog) -> None:
    """Drops the log as a crash would: no flush, no clean-shutdown marker."""
    log._close_files()


def fill(d: Path, n: int) -> PartitionLog:
    log = PartitionLog.open(d, CONFIG)
    for i in range(n):
        log.append(batch(b"v%03d" % i))
    return log


def values(log: PartitionLog) -> list[bytes | None]:
    return [r.value for r in read_all(log)]


def reopen(d: Path, caplog: pytest.LogCaptureFixture) -> PartitionLog:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="odradek.storage"):
        return PartitionLog.open(d, CONFIG)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("cut", [1, 30, BATCH - 1])
def test_torn_tail_of_active_segment(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                     cut: int) -> None:
    d = tmp_path / "p"
    log = fill(d, 10)
    active = log.segments[-1].log_path
    crash(log)
    size = active.stat().st_size
    os.truncate(active, size - cut)
    log = reopen(d, caplog)
    [msg] = warnings(caplog)
    assert f"truncated {active} at byte {size - BATCH}, dropping {BATCH - cut} bytes" in msg
    assert "torn batch" in msg
    assert values(log) == [b"v%03d" % i for i in range(9)]
    assert log.append(batch(b"next")).base_offset == 9
    assert values(log)[-1] == b"next"
    log.close()


def test_flipped_byte_in_active_segment(tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "p"
    log = fill(d, 40)
    assert log.segment_count > 1
    seg = log.segments[-1]
    first = seg.base_offset
    n = seg.next_offset - first
    crash(log)
    with open(seg.log_path, "r+b") as f:  # a value byte of the third batch in the segment
        f.seek(2 * BATCH + BATCH - 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x40]))
    log = reopen(d, caplog)
    [msg] = warnings(caplog)
    assert f"{seg.log_path} at byte {2 * BATCH}, dropping {(n - 2) * BATCH} bytes" in msg
    assert "CRC" in msg
    assert values(log) == [b"v%03d" % i for i in range(first + 2)]
    assert log.log_end_offset == first + 2
    log.close()


def test_garbage_after_last_batch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "p"
    log = fill(d, 5)
    path = log.segments[-1].log_path
    log.close()
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(os.urandom(20) + b"\x00" * 100)
    log = reopen(d, caplog)
    [msg] = warnings(caplog)
    assert f"at byte {size}, dropping 120 bytes" in msg
    assert values(log) == [b"v%03d" % i for i in range(5)]
    log.close()
    assert path.stat().st_size == size


def test_offsets_going_backwards_are_corruption(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "p"
    log = fill(d, 3)
    path = log.segments[-1].log_path
    crash(log)
    stale = bytearray(batch(b"old"))
    set_offset_and_epoch(stale, 0, 1, 0)  # base 1 after a batch that ended at 3
    with open(path, "ab") as f:
        f.write(stale)
    log = reopen(d, caplog)
    [msg] = warnings(caplog)
    assert "base offset 1 is below the previous batch's next offset 3" in msg
    assert log.log_end_offset == 3
    log.close()


def test_corruption_in_older_segment_after_crash_drops_the_rest(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "p"
    log = fill(d, 60)  # never flushed: nothing is trusted after a crash
    segs = list(log.segments)
    assert len(segs) >= 3
    victim = segs[1]
    crash(log)
    with open(victim.log_path, "r+b") as f:
        f.seek(BATCH + 30)
        f.write(b"\xff")
    log = reopen(d, caplog)
    msgs = warnings(caplog)
    assert f"truncated {victim.log_path} at byte {BATCH}" in msgs[0]
    assert len(msgs) == 1 + len(segs) - 2
    assert all("follows the corruption" in m for m in msgs[1:])
    assert log.log_end_offset == victim.base_offset + 1
    assert values(log) == [b"v%03d" % i for i in range(victim.base_offset + 1)]
    assert [p.name for p in segment_files(d)] == [s.log_path.name for s in segs[:2]]
    log.close()


def test_flushed_segments_are_trusted_after_a_crash(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "p"
    log = fill(d, 60)
    log.flush()
    log.append(batch(b"late"))
    crash(log)
    log = reopen(d, caplog)
    assert warnings(caplog) == []
    assert len(values(log)) == 61
    log.close()


@pytest.mark.parametrize("damage", ["delete", "odd-size", "wrong-entries", "empty"])
def test_broken_index_files_are_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                        damage: str) -> None:
    d = tmp_path / "p"
    log = fill(d, 60)
    expected = values(log)
    log.close()
    originals = {p: p.read_bytes() for p in segment_files(d, ".index")
                 + segment_files(d, ".timeindex")}
    first_index, first_time = segment_files(d, ".index")[0], segment_files(d, ".timeindex")[0]
    for path in (first_index, first_time, segment_files(d, ".index")[-1]):
        if damage == "delete":
            path.unlink()
        elif damage == "odd-size":
            path.write_bytes(path.read_bytes() + b"\x01")
        elif damage == "empty":
            path.write_bytes(b"")
        else:
            raw = bytearray(path.read_bytes())
            raw[:4] = b"\x7f\xff\xff\x00"
            path.write_bytes(bytes(raw))
    log = reopen(d, caplog)
    assert any("index of" in m and first_index.name.replace(".index", ".log") in m
               for m in warnings(caplog))
    assert values(log) == expected
    for path, content in originals.items():
        assert path.read_bytes() == content, path
    # Reads through the rebuilt index land on the right batch.
    for offset in range(0, 60, 7):
        assert read_all(log, offset)[0].value == b"v%03d" % offset
    log.close()


def test_orphan_and_temp_files_are_removed(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "p"
    fill(d, 3).close()
    (d / "00000000000000000999.index").write_bytes(b"")
    (d / "00000000000000000000.index.tmp").write_bytes(b"x")
    log = reopen(d, caplog)
    assert not (d / "00000000000000000999.index").exists()
    assert not (d / "00000000000000000000.index.tmp").exists()
    assert len(values(log)) == 3
    log.close()
