"""PartitionLog: append, read, roll, replicated appends, truncation, flush, time lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from odradek.records import InvalidRecordError, encode_batch, iter_batches, iter_records
from odradek.records.batch import parse_header, set_offset_and_epoch
from odradek.storage import LogConfig, OffsetOutOfRangeError, PartitionLog
from tests.unit.storage_util import Clock, batch, read_all, segment_files

SMALL = LogConfig(segment_bytes=1024, index_interval_bytes=128)


def test_append_assigns_offsets_and_epoch(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "p", SMALL)
    info = log.append(batch(b"a", b"b", b"c") + batch(b"d"), leader_epoch=3)
    assert (info.base_offset, info.last_offset, info.log_append_time_ms) == (0, 3, -1)
    info = log.append(batch(b"e"), leader_epoch=4)
    assert (info.base_offset, info.last_offset) == (4, 4)
    assert log.log_end_offset == 5
    data = log.read(0, 1 << 20).data
    headers = [h for _, h in iter_batches(data)]
    assert [(h.base_offset, h.leader_epoch) for h in headers] == [(0, 3), (3, 3), (4, 4)]
    assert [r.value for r in iter_records(data)] == [b"a", b"b", b"c", b"d", b"e"]
    log.close()


def test_invalid_append_writes_nothing(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "p", SMALL)
    log.append(batch(b"a"))
    bad = bytearray(batch(b"x"))
    bad[-1] ^= 1
    with pytest.raises(InvalidRecordError):
        log.append(batch(b"ok") + bytes(bad))
    log.update_config(LogConfig(segment_bytes=1024, max_message_bytes=100))
    with pytest.raises(InvalidRecordError) as e:
        log.append(batch(b"x" * 200))
    assert e.value.reason == "RECORD_TOO_LARGE"
    assert log.log_end_offset == 1
    assert [r.value for r in read_all(log)] == [b"a"]
    log.close()


def test_read_semantics(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "p", LogConfig(index_interval_bytes=0))
    for i in range(10):
        log.append(batch(b"%d" % i, b"%d" % i))  # offsets 2i, 2i+1
    one = len(batch(b"0", b"0"))
    r = log.read(5, one * 3)
    assert parse_header(r.data).base_offset == 4  # the batch holding 5
    assert len(r.data) == one * 3 and r.next_offset == 10
    r = log.read(0, 1)  # at least one whole batch
    assert len(r.data) == one and r.next_offset == 2
    r = log.read(0, 1 << 20, max_offset=6)  # never a batch at or past the high watermark
    assert r.next_offset == 6 and len(r.data) == one * 3
    assert log.read(6, 100, max_offset=6).data == b""
    r = log.read(20, 100)
    assert r.data == b"" and r.next_offset == 20
    for bad in (-1, 21):
        with pytest.raises(OffsetOutOfRangeError, match="valid offsets are 0 to 20"):
            log.read(bad, 100)
    log.close()


def test_roll_by_size_and_time(tmp_path: Path) -> None:
    clock = Clock()
    log = PartitionLog.open(tmp_path / "p", LogConfig(segment_bytes=1024, segment_ms=1000),
                            clock=clock)
    big = batch(b"x" * 400)
    log.append(big)
    log.append(big)
    assert log.segment_count == 1
    log.append(big)  # would exceed 1024
    assert log.segment_count == 2
    clock.now += 1001
    log.append(batch(b"y"))
    assert log.segment_count == 3
    log.append(batch(b"x" * 2000))  # bigger than a segment: gets one of its own
    assert log.segment_count == 4
    assert [p.name for p in segment_files(tmp_path / "p")] == [
        "00000000000000000000.log", "00000000000000000002.log", "00000000000000000003.log",
        "00000000000000000004.log"]
    assert [r.offset for r in read_all(log)] == [0, 1, 2, 3, 4]
    log.close()


def test_log_append_time(tmp_path: Path) -> None:
    clock = Clock(5_000)
    log = PartitionLog.open(tmp_path / "p", LogConfig(message_timestamp_type="LogAppendTime"),
                            clock=clock)
    info = log.append(batch(b"a", b"b", ts=1))
    assert info.log_append_time_ms == 5_000 and info.max_timestamp == 5_000
    assert [r.timestamp for r in read_all(log)] == [5_000, 5_000]
    log.close()


def test_append_replicated(tmp_path: Path) -> None:
    leader = PartitionLog.open(tmp_path / "leader", SMALL)
    for i in range(5):
        leader.append(batch(b"%d" % i), leader_epoch=i)
    data = leader.read(0, 1 << 20).data
    follower = PartitionLog.open(tmp_path / "follower", SMALL)
    with pytest.raises(ValueError, match="log end offset is 0"):
        follower.append_replicated(data[len(batch(b"0")):])
    info = follower.append_replicated(data)
    assert (info.base_offset, info.last_offset) == (0, 4)
    assert follower.read(0, 1 << 20).data == data  # stored as they are
    # A batch that goes backwards is refused.
    again = bytearray(batch(b"z"))
    set_offset_and_epoch(again, 0, 5, 9)
    back = bytearray(batch(b"w"))
    set_offset_and_epoch(back, 0, 3, 9)
    with pytest.raises(ValueError, match="below"):
        follower.append_replicated(bytes(again) + bytes(back))
    assert follower.log_end_offset == 5
    leader.close()
    follower.close()


def test_truncate_to(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "p", SMALL)
    for i in range(30):
        log.append(batch(b"v%d" % i, b"w" * 50))  # two records a batch
    assert log.segment_count > 3
    log.truncate_to(31)  # inside the batch 30-31: the whole batch goes
    assert log.log_end_offset == 30
    assert [r.offset for r in read_all(log)] == list(range(30))
    log.truncate_to(4)
    assert log.log_end_offset == 4 and log.segment_count == 1
    assert log.append(batch(b"new")).base_offset == 4
    log.close()
    log = PartitionLog.open(tmp_path / "p", SMALL)
    assert [r.value for r in read_all(log)][-1] == b"new"
    assert log.log_end_offset == 5
    log.truncate_to(0)
    assert (log.log_start_offset, log.log_end_offset, log.segment_count) == (0, 0, 1)
    log.close()


def test_flush_and_clean_shutdown_marker(tmp_path: Path) -> None:
    clock = Clock()
    d = tmp_path / "p"
    log = PartitionLog.open(d, LogConfig(flush_ms=1000), clock=clock)
    assert not log.flush_if_due()
    log.append(batch(b"a"))
    assert not log.flush_if_due()
    clock.now += 1000
    assert log.flush_if_due()
    assert not log.flush_if_due()
    log.update_config(LogConfig(flush_messages=2))
    log.append(batch(b"b"))
    assert log._unflushed_messages == 1
    log.append(batch(b"c"))
    assert log._unflushed_messages == 0
    log.close()
    assert (d / ".clean_shutdown").exists()
    log = PartitionLog.open(d, LogConfig())
    assert not (d / ".clean_shutdown").exists()
    assert log.log_end_offset == 3
    log.delete()
    assert not d.exists()


def test_offset_for_timestamp(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "p", LogConfig(segment_bytes=1024,
                                                      index_interval_bytes=64))
    # Timestamps 100, 110, ... with one out-of-order record.
    for i in range(40):
        ts = 100 + 10 * i
        log.append(encode_batch([(ts, b"k", b"v"), (ts + 5 if i != 7 else 50, b"k", b"v")]))
    assert log.segment_count > 2
    assert log.offset_for_timestamp(0) == (0, 100)
    assert log.offset_for_timestamp(100) == (0, 100)
    assert log.offset_for_timestamp(101) == (1, 105)
    assert log.offset_for_timestamp(170) == (14, 170)
    assert log.offset_for_timestamp(175) == (16, 180)  # offset 15 has timestamp 50
    assert log.offset_for_timestamp(495) == (79, 495)
    assert log.offset_for_timestamp(496) is None
    log.close()
    log = PartitionLog.open(tmp_path / "p", LogConfig(segment_bytes=1024))
    assert log.offset_for_timestamp(301) == (41, 305)
    log.close()


def test_closed_log_refuses_work(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "p", SMALL)
    log.close()
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.append(batch(b"a"))
