"""The __consumer_offsets record codec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from odradek.broker.groups.records import (
    GroupKey,
    GroupValue,
    MemberValue,
    OffsetKey,
    OffsetValue,
    decode,
    encode_key,
    encode_value,
)
from odradek.broker.groups.replay import rebuild
from odradek.records import Record

names = st.text(min_size=1, max_size=20)


@given(names, names, st.integers(0, 2**31 - 1), st.integers(0, 2**62), st.text(max_size=30))
def test_offset_records_round_trip(group, topic, partition, offset, metadata):
    key, value = OffsetKey(group, topic, partition), OffsetValue(offset, metadata, 1234)
    assert decode(encode_key(key), encode_value(value)) == (key, value)
    assert decode(encode_key(key), None) == (key, None)


@given(names, st.lists(st.tuples(names, names, st.lists(
    st.tuples(names, st.integers(0, 100)), max_size=5)), max_size=4))
def test_group_records_round_trip(group, members):
    value = GroupValue(7, "sticky", tuple(
        MemberValue(mid, inst, "c", ("t",), 3000, 60_000, tuple(owned))
        for mid, inst, owned in members))
    assert decode(encode_key(GroupKey(group)), encode_value(value)) == (GroupKey(group), value)


def test_keys_of_a_group_and_of_its_offsets_differ():
    assert encode_key(GroupKey("g")) != encode_key(OffsetKey("g", "t", 0))


@pytest.mark.parametrize("key,value", [
    (b"not json", b"{}"),
    (b'["offset","g","t"]', b"{}"),
    (b'["offset","g","t",0]', b'{"offset":1}'),
    (b'["what","g"]', None),
    (b'["group","g"]', b'{"generation":1}'),
])
def test_bad_records_raise_value_error(key, value):
    with pytest.raises(ValueError):
        decode(key, value)


def _record(offset: int, key: object, value: object | None) -> Record:
    return Record(offset, 0, encode_key(key),  # type: ignore[arg-type]
                  None if value is None else encode_value(value))  # type: ignore[arg-type]


def test_replay_keeps_the_latest_record_per_key_and_honours_tombstones():
    member = MemberValue("m1", "", "c", ("t",), 3000, 60_000, (("t", 0),))
    records = [
        _record(0, OffsetKey("g", "t", 0), OffsetValue(5, "", 1)),
        _record(1, GroupKey("g"), GroupValue(1, "range", (member,))),
        _record(2, OffsetKey("g", "t", 0), OffsetValue(9, "x", 2)),
        _record(3, OffsetKey("gone", "t", 0), OffsetValue(1, "", 1)),
        _record(4, GroupKey("gone"), GroupValue(1, "sticky", ())),
        _record(5, OffsetKey("gone", "t", 0), None),
        _record(6, GroupKey("gone"), None),
        Record(7, 0, b"garbage", b"{}"),
        _record(8, GroupKey("g"), GroupValue(2, "range", (member,))),
    ]
    groups = rebuild(records, now=10.0, wall_ms=1_000)
    assert set(groups) == {"g"}
    g = groups["g"]
    assert g.generation == 2 and g.strategy == "range"
    assert g.offsets == {("t", 0): OffsetValue(9, "x", 2)}
    assert g.members["m1"].owned == {("t", 0)} and not g.members["m1"].connected
