"""The compiled record codec (odradek.records._fast) against the pure one (_pure): the
same batches byte for byte, the same records back, the same errors on bad input. And
that the compiled one is what this venv runs (so CI proves it compiles on a fresh
machine), unless ODRADEK_PURE_PYTHON is set."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from odradek.records import (
    BatchBuilder,
    Compression,
    InvalidRecordError,
    _impl,
    _pure,
    builder,
    parse_header,
    reader,
)
from odradek.records.batch import BATCH_HEADER_SIZE
from odradek.records.record import Record

try:
    from odradek.records import _fast
except ImportError as exc:  # the tests below then fail, saying so
    _fast_error: ImportError | None = exc
else:
    _fast_error = None

CODECS = ("pure", "compiled")
INT64 = (-(2**63), 2**63 - 1)

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

Rec = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]


def fast() -> ModuleType:
    if _fast_error is not None:
        pytest.fail(f"odradek.records._fast is not built in this venv: {_fast_error}")
    return _fast


def codec(name: str) -> ModuleType:
    return _pure if name == "pure" else fast()


def build(mod: ModuleType, records: Sequence[Rec], compression: Compression = Compression.NONE,
          producer: tuple[int, int, int] = (-1, -1, -1), control: bool = False) -> bytes:
    buf = mod.RecordsBuffer()
    for ts, key, value, headers in records:
        buf.append(ts, key, value, headers)
    return builder._finish(mod.frame_batch, buf, compression, *producer, control)


def decode(mod: ModuleType, data: bytes) -> list[Record]:
    return reader._records(mod.decode_records, memoryview(data), 0, parse_header(data))


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    """A call's result, or its error's type (and reason, for a batch error): what the two
    codecs must agree on."""
    try:
        return "ok", fn(*args)
    except InvalidRecordError as exc:
        return "invalid", exc.reason
    except Exception as exc:
        return "error", type(exc)


blobs = st.one_of(st.none(), st.just(b""), st.binary(max_size=200),
                  st.binary(min_size=1, max_size=1).map(lambda b: b * 70_000))
headers_st = st.lists(st.tuples(st.text(max_size=10), st.one_of(st.none(), st.binary(max_size=30))),
                      max_size=4)
records_st = st.lists(
    st.tuples(st.integers(*INT64), blobs, blobs, headers_st), min_size=1, max_size=60)
producer_st = st.tuples(st.integers(*INT64), st.integers(-(2**15), 2**15 - 1),
                        st.integers(-(2**31), 2**31 - 1))


@seed(20261202)
@PROPERTY
@given(records=records_st, compression=st.sampled_from(list(Compression)),
       producer=producer_st, control=st.booleans())
def test_same_batch_and_same_records(records: list[Rec], compression: Compression,
                                     producer: tuple[int, int, int], control: bool) -> None:
    pure = build(_pure, records, compression, producer, control)
    compiled = build(fast(), records, compression, producer, control)
    assert compiled == pure
    decoded = decode(_pure, pure)
    assert decode(fast(), pure) == decoded
    if all(INT64[0] <= ts - records[0][0] <= INT64[1] for ts, *_ in records):
        # (Past int64, a timestamp delta's zigzag wraps in both codecs, as in Kafka's.)
        assert [(r.offset, r.timestamp, r.key, r.value, list(r.headers))
                for r in decoded] == [(i, ts, k, v, h) for i, (ts, k, v, h) in enumerate(records)]


@seed(20261203)
@PROPERTY
@given(records=records_st, data=st.data())
def test_same_rebuilt_batch(records: list[Rec], data: st.DataObject) -> None:
    original = build(_pure, records)
    header = parse_header(original)
    kept = data.draw(st.lists(st.sampled_from(decode(_pure, original)), min_size=1,
                              max_size=len(records), unique_by=lambda r: r.offset))
    kept.sort(key=lambda r: r.offset)
    # (A maxTimestamp past int64, from a delta that wrapped, is refused by both.)
    assert (outcome(builder._rebuild, fast().RecordsBuffer, fast().frame_batch, header, kept)
            == outcome(builder._rebuild, _pure.RecordsBuffer, _pure.frame_batch, header, kept))


@seed(20261204)
@PROPERTY
@given(records=st.lists(st.tuples(st.integers(0, 2**41), st.binary(max_size=20),
                                  st.binary(max_size=20), headers_st), min_size=1, max_size=8),
       cuts=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1,
                     max_size=4),
       truncate=st.integers(0, 10_000))
def test_same_verdict_on_damaged_records(records: list[Rec], cuts: list[tuple[int, int]],
                                         truncate: int) -> None:
    body = bytearray(build(_pure, records)[BATCH_HEADER_SIZE:])
    for at, byte in cuts:
        body[at % len(body)] = byte
    damaged = bytes(body[: len(body) - truncate % len(body)])
    args = (damaged, len(records), 10, 1_000, None)
    assert outcome(fast().decode_records, *args) == outcome(_pure.decode_records, *args)


@pytest.mark.parametrize("delta", [0, 1, -1, 63, -64, 64, 2**14, 2**31, -(2**31) - 1,
                                   2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64 - 1,
                                   2**64, 2**69, -(2**69), 2**70, -(2**90), 2**200])
def test_same_varints_at_any_width(delta: int) -> None:
    """Deltas past 64 bits (Python ints are unbounded, and a batch's timestamps may
    span the whole int64 range): the compiled codec hands them to the pure varint code."""
    bodies = {}
    for name in CODECS:
        buf = codec(name).RecordsBuffer()
        buf.append_raw(delta, delta, b"k", None)
        bodies[name] = buf.body()
    assert bodies["compiled"] == bodies["pure"]
    args = (bodies["pure"], 1, 2**40, -(2**40), None)
    assert outcome(fast().decode_records, *args) == outcome(_pure.decode_records, *args)


def test_same_batch_across_the_int64_timestamp_range() -> None:
    records: list[Rec] = [(INT64[0], None, b"a", []), (INT64[1], b"", None, []),
                          (0, b"k", b"v", [("", b"")])]
    assert build(fast(), records) == build(_pure, records)
    assert decode(fast(), build(_pure, records)) == decode(_pure, build(_pure, records))


@pytest.mark.parametrize("key", [bytearray(b"abc"), memoryview(b"xyz"), "text", 5, b"b"])
def test_same_handling_of_key_types(key: Any) -> None:
    results = []
    for name in CODECS:
        buf = codec(name).RecordsBuffer()
        results.append(outcome(lambda b=buf: (b.append(1, key, key, [("h", key)]), b.body())))
    assert results[0] == results[1]


@pytest.mark.parametrize("headers", [[(b"bytes-name", b"v")], [("\ud800", b"v")],
                                     [("ok", "str value")], [("naïve ✓", None)], [("a",)]])
def test_same_handling_of_odd_headers(headers: Any) -> None:
    results = []
    for name in CODECS:
        buf = codec(name).RecordsBuffer()
        results.append(outcome(lambda b=buf: (b.append(1, None, b"v", headers), b.body(),
                                              len(b), b.size_estimate)))
    assert results[0] == results[1]


def test_failed_append_leaves_the_buffer_as_it_was() -> None:
    for name in CODECS:
        buf = codec(name).RecordsBuffer()
        buf.append(7, b"k", b"v")
        with pytest.raises(AttributeError):
            buf.append(8, b"k", b"v", [(b"not-str", b"")])
        buf.append(9, None, b"w")
        assert len(buf) == 2
        assert [r.value for r in _pure.decode_records(buf.body(), 2, 0, 7, None)] == [b"v", b"w"]


@pytest.mark.parametrize("field,value", [(0, 2**63), (1, 2**31), (2, -(2**15) - 1),
                                         (7, 2**15), (8, -(2**31) - 1), (4, 1.5), (5, None)])
def test_same_refusal_of_out_of_range_header_fields(field: int, value: Any) -> None:
    fields: list[Any] = [0, -1, 0, 0, 0, 0, -1, -1, -1, 1]
    fields[field] = value
    assert outcome(fast().frame_batch, *fields, b"\x00") == (
        outcome(_pure.frame_batch, *fields, b"\x00"))
    assert outcome(fast().frame_batch, *fields, b"\x00")[1] is struct.error


def test_log_append_time_stamps_every_record() -> None:
    body = build(_pure, [(5, None, b"a", []), (9, None, b"b", [])])[BATCH_HEADER_SIZE:]
    for name in CODECS:
        assert [r.timestamp for r in codec(name).decode_records(body, 2, 0, 5, 1234)] == [
            1234, 1234]


def test_compiled_codec_is_built_and_active() -> None:
    if os.environ.get("ODRADEK_PURE_PYTHON", "").strip() not in ("", "0"):
        pytest.skip("ODRADEK_PURE_PYTHON is set: the pure-Python codec is forced")
    mod = fast()
    assert mod.__file__ is not None and mod.__file__.endswith(".so"), mod.__file__
    assert _impl.IMPLEMENTATION == "compiled"
    assert _impl.CODEC is mod
    assert BatchBuilder.__mro__[1] is mod.RecordsBuffer


def test_pure_python_env_forces_the_pure_codec_with_the_same_bytes() -> None:
    script = (
        "from odradek.records import BatchBuilder, Compression, _impl\n"
        "b = BatchBuilder(Compression.GZIP)\n"
        "b.append(-5, None, b'v' * 300, [('h', None)])\n"
        "b.append(2**40, b'', b'')\n"
        "print(_impl.IMPLEMENTATION, BatchBuilder.__mro__[1].__module__, b.build().hex())\n")
    env = {**os.environ, "ODRADEK_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    assert out[:2] == ["pure", "odradek.records._pure"]
    records: list[Rec] = [(-5, None, b"v" * 300, [("h", None)]), (2**40, b"", b"", [])]
    assert bytes.fromhex(out[2]) == build(fast(), records, Compression.GZIP)
