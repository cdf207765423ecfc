"""Compaction: latest value per key, offsets kept, tombstones expire, crash-safe swaps."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch

from odradek.records import BatchBuilder, Compression, Record, iter_batches
from odradek.storage import LogConfig, PartitionLog
from odradek.storage import cleaner as cleaner_module
from tests.unit.storage_util import Clock, read_all

NOW = 1_700_000_000_000
DELETE_RETENTION = 1000
CONFIG = LogConfig(segment_bytes=1024, index_interval_bytes=200,
                   cleanup_policy=frozenset({"compact"}), min_cleanable_dirty_ratio=0.0,
                   delete_retention_ms=DELETE_RETENTION)

# A write: (key index or None for no key, value size or None for a tombstone, age in ms).
writes_st = st.lists(
    st.tuples(st.one_of(st.none(), st.integers(0, 7)),
              st.one_of(st.none(), st.integers(20, 200)),
              st.integers(0, 2 * DELETE_RETENTION)),
    min_size=20, max_size=80)
batch_sizes_st = st.lists(st.integers(1, 4), min_size=1, max_size=60)


def write(log: PartitionLog, writes: list, sizes: list[int],
          compression: Compression = Compression.NONE) -> None:
    i = 0
    n = 0
    while i < len(writes):
        size = sizes[n % len(sizes)]
        n += 1
        builder = BatchBuilder(compression)
        for j, (key, value, age) in enumerate(writes[i : i + size], start=i):
            if isinstance(value, int):
                value = b"%d:" % j + b"x" * value
            builder.append(NOW - age, None if key is None else b"key-%d" % key, value)
        log.append(builder.build())
        i += size


def view(records: list[Record]) -> list[tuple]:
    return [(r.offset, r.timestamp, r.key, r.value) for r in records]


def expected_after(records: list[Record], active_base: int) -> list[tuple]:
    latest: dict[bytes, int] = {}
    for r in records:
        if r.key is not None and r.offset < active_base:
            latest[r.key] = r.offset
    def survives(r: Record) -> bool:
        if r.offset >= active_base or r.key is None:
            return True
        expired = r.value is None and r.timestamp < NOW - DELETE_RETENTION
        return latest[r.key] == r.offset and not expired

    return view([r for r in records if survives(r)])


def check_batches_valid(log: PartitionLog) -> None:
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        result = log.read(offset, 1 << 30)
        data = result.data
        for pos, header in iter_batches(data):
            batch = DefaultRecordBatch(bytes(data[pos : pos + header.size]))
            assert batch.validate_crc()
            assert list(batch)  # kafka-python decodes it
        offset = result.next_offset


FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FAST
@given(writes=writes_st, sizes=batch_sizes_st,
       compression=st.sampled_from([Compression.NONE, Compression.ZSTD, Compression.LZ4]))
def test_compaction_keeps_latest_per_key(writes: list, sizes: list[int],
                                         compression: Compression) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "p"
        log = PartitionLog.open(d, CONFIG, clock=Clock(NOW))
        write(log, writes, sizes, compression)
        before = read_all(log)
        active = log.segments[-1]
        active_bytes = active.log_path.read_bytes()
        expected = expected_after(before, active.base_offset)
        stats = log.compact()
        assert view(read_all(log)) == expected
        assert stats.records_removed == len(before) - len(expected)
        event(f"segments: {min(len(set(log.segments)), 5)}, removed: {stats.records_removed > 0}")
        assert log.segments[-1].log_path.read_bytes() == active_bytes  # untouched
        assert log.log_end_offset == active.next_offset
        check_batches_valid(log)
        log.close()
        log = PartitionLog.open(d, CONFIG, clock=Clock(NOW))
        assert view(read_all(log)) == expected
        assert log.compact().records_removed == 0
        log.close()


@pytest.mark.parametrize("stage", ["cleaned", "committed", "old-deleted"])
def test_crash_mid_compaction_recovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture, stage: str) -> None:
    d = tmp_path / "p"
    log = PartitionLog.open(d, CONFIG, clock=Clock(NOW))
    # Small segments that merge into groups of several, so a swap deletes old segments.
    writes = [(i % 3, b"v%03d" % i + b"." * 150, 0) for i in range(40)]
    write(log, writes, [1])
    before = read_all(log)
    expected = expected_after(before, log.segments[-1].base_offset)

    def crash_at(name: str) -> None:
        if name == stage:
            raise RuntimeError(f"simulated crash at {name}")

    monkeypatch.setattr(cleaner_module, "_crash_point", crash_at)
    with pytest.raises(RuntimeError, match="simulated crash"):
        log.compact()
    log._close_files()  # the process dies: no flush, no marker
    leftovers = [p.name for p in d.iterdir() if p.name.endswith((".cleaned", ".swap"))]
    assert leftovers

    monkeypatch.setattr(cleaner_module, "_crash_point", lambda name: None)
    with caplog.at_level(logging.WARNING, logger="odradek.storage"):
        log = PartitionLog.open(d, CONFIG, clock=Clock(NOW))
    assert any("compaction" in r.getMessage() for r in caplog.records)
    assert not [p for p in d.iterdir() if p.name.endswith((".cleaned", ".swap"))]
    after_crash = read_all(log)
    # A valid log: offsets increase, every record is an original one, nothing that
    # compaction keeps was lost, and the latest value of every key is there.
    offsets = [r.offset for r in after_crash]
    assert offsets == sorted(set(offsets))
    originals = {r.offset: r for r in before}
    assert all(originals[r.offset] == r for r in after_crash)
    assert {e[0] for e in expected} <= set(offsets)
    # Compaction afterwards completes the job.
    log.compact()
    assert view(read_all(log)) == expected
    check_batches_valid(log)
    log.close()


def test_tombstones_lag_control_batches_and_keyless_records(tmp_path: Path) -> None:
    clock = Clock(NOW)
    config = LogConfig(segment_bytes=1024, cleanup_policy=frozenset({"compact", "delete"}),
                       min_cleanable_dirty_ratio=0.0, delete_retention_ms=DELETE_RETENTION,
                       min_compaction_lag_ms=5000, retention_ms=-1)
    log = PartitionLog.open(tmp_path / "p", config, clock=clock)
    pad = b"." * 1000  # a padded record fills a segment of its own

    def put(key: bytes | None, value: bytes | None, ts: int, control: bool = False) -> None:
        b = BatchBuilder(control=control)
        b.append(ts, key, value)
        log.append(b.build())

    put(b"a", b"1" + pad, NOW - 10_000)           # 0 superseded
    put(b"b", b"1" + pad, NOW - 10_000)           # 1 deleted by the tombstone at 3
    put(None, b"keyless" + pad, NOW - 10_000)     # 2 kept: no key
    put(b"b", None, NOW - 10_000)                 # 3 tombstone older than delete.retention
    put(b"c", None, NOW - 10_000, control=True)   # 4 control batch: kept
    put(b"a", b"2" + pad, NOW - 10_000)           # 5 latest a
    put(b"d", None, NOW)                          # 6 superseded, but younger than the lag
    put(b"d", b"x" + pad, NOW)                    # 7
    put(b"e", b"e" + pad, NOW)                    # 8 active segment
    assert [s.base_offset for s in log.segments] == [0, 1, 2, 3, 5, 6, 7, 8]
    stats = log.compact()
    got = [(r.offset, r.key, r.value) for r in read_all(log)]
    offsets = [o for o, _, _ in got]
    assert 0 not in offsets and 1 not in offsets and 3 not in offsets
    assert {2, 5, 6, 7, 8} <= set(offsets)  # 6..8 are younger than min.compaction.lag.ms
    data = log.read(4, 1 << 20).data
    assert next(iter_batches(data))[1].is_control
    assert stats.records_removed == 3
    clock.now += 10_000  # lag passed: the fresh tombstone is superseded by offset 7
    log.append(_one(b"f", NOW + 10_000))  # moves nothing out of the active segment
    log.compact()
    offsets = [r.offset for r in read_all(log)]
    assert 6 not in offsets and 7 in offsets


def _one(key: bytes, ts: int) -> bytes:
    b = BatchBuilder()
    b.append(ts, key, b"v")
    return b.build()


def test_dirty_ratio_and_policy(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "p", LogConfig(segment_bytes=1024), clock=Clock(NOW))
    write(log, [(i % 2, b"x" * 200, 0) for i in range(20)], [1])
    assert log.compact().segments_cleaned == 0  # cleanup.policy=delete
    log.update_config(LogConfig(segment_bytes=1024, cleanup_policy=frozenset({"compact"}),
                                min_cleanable_dirty_ratio=0.5))
    first = log.compact()
    assert first.segments_cleaned > 0 and first.bytes_after < first.bytes_before
    assert log.compact().segments_cleaned == 0  # nothing dirty now
    log.close()


def test_cleaner_leaves_no_temp_files_on_success(tmp_path: Path) -> None:
    d = tmp_path / "p"
    log = PartitionLog.open(d, CONFIG, clock=Clock(NOW))
    write(log, [(i % 4, b"y" * 100, 0) for i in range(50)], [2])
    log.compact()
    assert not [p for p in d.iterdir() if p.suffix in (".cleaned", ".swap", ".tmp")]
    names = sorted(p.name for p in d.iterdir())
    assert all(n.endswith((".log", ".index", ".timeindex"))
               or n.startswith(("recovery-point", "durable-end.")) for n in names), names
    log.close()


def test_a_group_that_changed_under_the_cleaner_is_not_swapped_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compaction cleans outside the log's lock (in the broker's worker thread): a
    truncation that came first wins, and the cleaned files are dropped."""
    d = tmp_path / "p"
    log = PartitionLog.open(d, CONFIG, clock=Clock(NOW))
    writes = [(i % 3, b"v%03d" % i + b"." * 150, 0) for i in range(40)]
    write(log, writes, [1])
    cut = log.segments[1].base_offset

    def truncate_meanwhile(name: str) -> None:
        if name == "cleaned":
            log.truncate_to(cut)  # a new Raft leader's log diverged there

    monkeypatch.setattr(cleaner_module, "_crash_point", truncate_meanwhile)
    stats = log.compact()
    assert stats.records_removed == 0
    assert log.log_end_offset == cut
    assert not [p for p in d.iterdir() if p.name.endswith((".cleaned", ".swap"))]
    kept = read_all(log)
    assert [r.offset for r in kept] == list(range(cut))
    check_batches_valid(log)
    log.close()


def test_nothing_at_or_above_upto_is_cleaned(tmp_path: Path) -> None:
    """A replica compacts only below its high watermark: records above it may still be
    truncated, and a key's older records must not go for a latest one that may vanish."""
    d = tmp_path / "p"
    log = PartitionLog.open(d, CONFIG, clock=Clock(NOW))
    writes = [(i % 3, b"v%03d" % i + b"." * 150, 0) for i in range(40)]
    write(log, writes, [1])
    upto = log.segments[3].base_offset
    above = [s.log_path.read_bytes() for s in log.segments[3:]]
    stats = log.compact(upto=upto)
    assert stats.segments_cleaned == 3
    assert [s.log_path.read_bytes() for s in log.segments if s.base_offset >= upto] == above
    # The keys' records below upto are all superseded within what was read: one each left.
    kept = [r for r in read_all(log) if r.offset < upto]
    assert sorted(r.key for r in kept) == [b"key-0", b"key-1", b"key-2"]
    log.truncate_to(upto)  # what may happen above the high watermark
    assert sorted(r.key for r in read_all(log)) == [b"key-0", b"key-1", b"key-2"]
    log.close()
