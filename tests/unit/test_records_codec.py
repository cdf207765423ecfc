"""RecordBatch v2 codec: round trips, and byte compatibility with kafka-python."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from odradek.records import (
    BatchBuilder,
    Compression,
    InvalidRecordError,
    decode_batch,
    parse_header,
    rebuild_batch,
    validate_batches,
)
from odradek.records.batch import set_max_timestamp, set_offset_and_epoch

FAST = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

blobs = st.one_of(st.none(), st.binary(max_size=64))
header_names = st.text(max_size=8)
records_st = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2**41),
        blobs,
        blobs,
        st.lists(st.tuples(header_names, blobs), max_size=3),
    ),
    min_size=1,
    max_size=20,
)


def build(compression: Compression, records: list, **kw: int) -> bytes:
    b = BatchBuilder(compression, **kw)
    for ts, key, value, headers in records:
        b.append(ts, key, value, headers)
    return b.build()


@pytest.mark.parametrize("compression", list(Compression))
@FAST
@given(records=records_st)
def test_round_trip(compression: Compression, records: list) -> None:
    data = build(compression, records)
    assert validate_batches(data, 1 << 30)[0].record_count == len(records)
    decoded = decode_batch(data)
    assert [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in decoded] == [
        (i, ts, k, v, h) for i, (ts, k, v, h) in enumerate(records)]
    header = parse_header(data)
    assert header.max_timestamp == max(r[0] for r in records)
    assert header.compression == compression


KAFKA_CODECS = {
    Compression.NONE: DefaultRecordBatch.CODEC_NONE,
    Compression.GZIP: DefaultRecordBatch.CODEC_GZIP,
    Compression.SNAPPY: DefaultRecordBatch.CODEC_SNAPPY,
    Compression.LZ4: DefaultRecordBatch.CODEC_LZ4,
    Compression.ZSTD: DefaultRecordBatch.CODEC_ZSTD,
}


def kafka_build(codec: int, records: list, pid: int = -1, epoch: int = -1,
                seq: int = -1) -> bytes:
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                  producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                                  batch_size=1 << 30)
    for i, (ts, key, value, headers) in enumerate(records):
        b.append(i, timestamp=ts, key=key, value=value, headers=headers)
    return bytes(b.build())


def kafka_records(data: bytes) -> list[tuple]:
    batch = DefaultRecordBatch(data)
    assert batch.validate_crc()
    return [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in batch]


@pytest.mark.parametrize("compression", list(Compression))
@FAST
@given(records=records_st)
def test_kafka_python_reads_ours_and_we_read_theirs(compression: Compression,
                                                    records: list) -> None:
    expected = [(i, ts, k, v, h) for i, (ts, k, v, h) in enumerate(records)]
    ours = build(compression, records)
    assert kafka_records(ours) == expected
    theirs = kafka_build(KAFKA_CODECS[compression], records)
    # kafka-python falls back to no compression when compressing does not pay.
    assert parse_header(theirs).compression in (compression, Compression.NONE)
    assert [(r.offset, r.timestamp, r.key, r.value, list(r.headers))
            for r in decode_batch(theirs)] == expected
    validate_batches(theirs, 1 << 30)


@FAST
@given(records=records_st, pid=st.integers(0, 2**40), epoch=st.integers(0, 2**15 - 1),
       seq=st.integers(0, 2**31 - 1))
def test_uncompressed_bytes_equal_kafka_python(records: list, pid: int, epoch: int,
                                               seq: int) -> None:
    ours = bytearray(build(Compression.NONE, records, producer_id=pid, producer_epoch=epoch,
                           base_sequence=seq))
    theirs = kafka_build(DefaultRecordBatch.CODEC_NONE, records, pid, epoch, seq)
    # partitionLeaderEpoch lies outside the CRC and is the broker's to set: Kafka's Java
    # producer writes -1 (as we do), kafka-python writes 0.
    set_offset_and_epoch(ours, 0, 0, 0)
    assert bytes(ours) == theirs


def test_rebuild_batch_keeps_offsets_and_is_valid_for_kafka_python() -> None:
    records = [(1000 + i, b"k%d" % i, b"v%d" % i, [("h", b"x")]) for i in range(6)]
    for compression in Compression:
        data = bytearray(build(compression, records, producer_id=7, producer_epoch=1,
                               base_sequence=3))
        set_offset_and_epoch(data, 0, 500, 4)
        header = parse_header(data)
        kept = [r for r in decode_batch(data) if r.offset % 2 == 1]
        rebuilt = rebuild_batch(header, kept)
        new = parse_header(rebuilt)
        assert (new.base_offset, new.last_offset_delta, new.leader_epoch, new.producer_id,
                new.base_sequence, new.compression, new.record_count) == (
                    500, 5, 4, 7, 3, compression, 3)
        assert new.max_timestamp == 1005
        assert decode_batch(rebuilt) == kept
        assert [(o, k) for o, _t, k, _v, _h in kafka_records(rebuilt)] == [
            (r.offset, r.key) for r in kept]


def test_log_append_time_stamps_every_record() -> None:
    data = bytearray(build(Compression.NONE, [(1, b"a", b"1", []), (2, b"b", b"2", [])]))
    set_max_timestamp(data, 0, 99_000, True)
    assert [r.timestamp for r in decode_batch(data)] == [99_000, 99_000]
    assert [r[1] for r in kafka_records(bytes(data))] == [99_000, 99_000]
    set_max_timestamp(data, 0, 2, False)
    assert [r.timestamp for r in decode_batch(data)] == [1, 2]


def test_validation_errors() -> None:
    good = build(Compression.NONE, [(1, b"k", b"v", [])])
    with pytest.raises(InvalidRecordError) as e:
        validate_batches(b"", 1000)
    assert e.value.reason == "INVALID_RECORD"
    flipped = bytearray(good)
    flipped[-1] ^= 0xFF
    with pytest.raises(InvalidRecordError, match="CRC") as e:
        validate_batches(bytes(flipped), 1000)
    assert e.value.reason == "CORRUPT_RECORD"
    with pytest.raises(InvalidRecordError) as e:
        validate_batches(good, 10)
    assert e.value.reason == "RECORD_TOO_LARGE"
    with pytest.raises(InvalidRecordError, match="truncated"):
        validate_batches(good[:-1] if len(good) < 61 else good[:40], 1000)
    with pytest.raises(InvalidRecordError):
        validate_batches(good + good[:30], 1000)
    bad_zstd = bytearray(build(Compression.ZSTD, [(1, b"k", b"v" * 100, [])]))
    bad_zstd[-3:] = b"\x00\x00\x00"
    # Re-CRC so that the damage is only in the compressed payload.
    set_max_timestamp(bad_zstd, 0, 1, False)
    with pytest.raises(InvalidRecordError) as e:
        decode_batch(bytes(bad_zstd))
    assert e.value.reason == "CORRUPT_RECORD"
