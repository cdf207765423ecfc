"""odradek.broker.peers.raft_codec: exact round trip of every Raft message through protobuf."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.broker.peers.raft_codec import (
    encode_envelope,
    estimate_size,
    from_proto,
    serialize_envelope,
    to_proto,
)
from odradek.raft.types import (
    NO_INDEX,
    ConfigState,
    Entry,
    EntryKind,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
)
from odradek.v1 import raft_pb2 as pb

ids = st.integers(min_value=0, max_value=2**31 - 1)
offsets = st.one_of(st.just(NO_INDEX), st.integers(min_value=-1, max_value=2**62))
terms = st.integers(min_value=0, max_value=2**62)

entries = st.builds(
    Entry,
    index=st.integers(min_value=0, max_value=2**62),
    count=st.integers(min_value=1, max_value=2**31 - 1),
    term=terms,
    data=st.binary(max_size=256),
    kind=st.sampled_from(EntryKind),
)

snapshots = st.builds(
    Snapshot,
    meta=st.builds(
        SnapshotMeta,
        index=offsets,
        term=terms,
        config=st.builds(ConfigState, voters=st.frozensets(ids, max_size=7)),
    ),
    data=st.binary(max_size=512),
)

messages = st.builds(
    Message,
    type=st.sampled_from(MessageType),
    from_id=ids,
    to_id=ids,
    term=terms,
    prev_index=offsets,
    prev_term=terms,
    entries=st.one_of(st.just(()), st.lists(entries, min_size=1, max_size=5)),
    commit=offsets,
    index=offsets,
    log_term=terms,
    reject=st.booleans(),
    reject_hint=offsets,
    snapshot=st.one_of(st.none(), snapshots),
    force=st.booleans(),
)

groups = st.one_of(st.just("__meta"), st.text(max_size=40))


@settings(max_examples=500)
@given(groups, messages)
def test_round_trip(group: str, m: Message) -> None:
    pm = to_proto(group, m)
    wire = pb.RaftMessage.FromString(pm.SerializeToString())
    assert from_proto(wire) == (group, m)
    assert estimate_size(m) >= len(m.snapshot.data if m.snapshot else b"")


def test_defaults_round_trip_per_type() -> None:
    for t in MessageType:
        m = Message(t, 1, 2, 3)
        assert m.prev_index == NO_INDEX and m.snapshot is None
        assert from_proto(pb.RaftMessage.FromString(to_proto("g", m).SerializeToString())) == (
            "g",
            m,
        )


def test_empty_snapshot_is_kept_distinct_from_none() -> None:
    m = Message(MessageType.SNAPSHOT, 1, 2, 3, snapshot=Snapshot())
    _, back = from_proto(pb.RaftMessage.FromString(to_proto("g", m).SerializeToString()))
    assert back.snapshot == Snapshot()
    assert back.snapshot.meta.index == NO_INDEX


def test_no_index_costs_one_byte() -> None:
    m = Message(MessageType.HEARTBEAT, 1, 2, 3)
    # group(2+1) type(2) from(2) to(2) term(2) prev_index(2) commit(2) index(2) reject_hint(2)
    assert len(to_proto("g", m).SerializeToString()) <= 20


def test_unknown_type_is_refused() -> None:
    pm = to_proto("g", Message(MessageType.VOTE, 1, 2, 3))
    pm.type = 99
    with pytest.raises(ValueError):
        from_proto(pm)


@settings(max_examples=200)
@given(st.integers(min_value=-(2**31), max_value=2**31 - 1),
       st.integers(min_value=-(2**31), max_value=2**31 - 1),
       st.lists(st.tuples(groups, messages), max_size=4))
def test_envelope_framed_by_hand_is_what_protobuf_writes(
        sender: int, receiver: int, batch: list[tuple[str, Message]]) -> None:
    protos = [to_proto(g, m) for g, m in batch]
    framed = encode_envelope(sender, receiver, [p.SerializeToString() for p in protos])
    expected = pb.RaftEnvelope(from_broker=sender, to_broker=receiver, messages=protos)
    assert framed == expected.SerializeToString()
    parsed = pb.RaftEnvelope.FromString(framed)
    assert [from_proto(p) for p in parsed.messages] == batch
    assert (parsed.from_broker, parsed.to_broker) == (sender, receiver)
    assert serialize_envelope(framed) is framed
    assert serialize_envelope(expected) == framed


def test_envelope_of_large_messages() -> None:
    data = bytes(range(256)) * 1024
    protos = [to_proto("t-0", Message(MessageType.APPEND, 0, 1, 3, entries=[
        Entry(i, 100, 3, data)])) for i in range(3)]
    framed = encode_envelope(0, 1, [p.SerializeToString() for p in protos])
    assert framed == pb.RaftEnvelope(to_broker=1, messages=protos).SerializeToString()
