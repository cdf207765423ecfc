"""Producer ids in the metadata image: blocks never overlap, named producers keep their id
and move up one epoch per initialisation, and the state survives snapshots."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.broker.metadata.commands import AllocateProducerIds, Command, InitNamedProducer
from odradek.broker.metadata.image import MetadataImage, apply, decode_snapshot, encode_snapshot
from odradek.broker.metadata.producer_ids import MAX_EPOCH, NamedProducer, ProducerIds


def build(*commands: Command) -> MetadataImage:
    image = MetadataImage()
    for offset, command in enumerate(commands):
        image = apply(image, offset, command)
    return image


def test_blocks_are_consecutive_and_recorded_per_broker() -> None:
    image = build(AllocateProducerIds(1, 1000), AllocateProducerIds(2, 10),
                  AllocateProducerIds(1, 5))
    assert image.producers.blocks == {1: (1010, 5), 2: (1000, 10)}
    assert image.producers.next_id == 1015


def test_named_producer_keeps_its_id_and_bumps_its_epoch() -> None:
    image = build(AllocateProducerIds(1, 3), InitNamedProducer("w"), InitNamedProducer("w"),
                  InitNamedProducer("other"))
    assert image.producers.named["w"] == NamedProducer(3, 1, 2)
    assert image.producers.named["other"] == NamedProducer(4, 0, 3)
    assert image.producers.next_id == 5
    assert image.producers.epochs == {3: 1, 4: 0}


def test_a_resume_bumps_only_the_current_identity() -> None:
    image = build(AllocateProducerIds(1, 3), InitNamedProducer("w"), InitNamedProducer("w"))
    assert image.producers.named["w"] == NamedProducer(3, 1, 2)
    # The fenced instance (epoch 0) resuming changes nothing: it stays fenced.
    stale = apply(image, 3, InitNamedProducer("w", "r1", 3, 0))
    assert stale.producers.named == image.producers.named and stale.last_offset == 3
    resumed = apply(stale, 4, InitNamedProducer("w", "r2", 3, 1))
    assert resumed.producers.named["w"] == NamedProducer(3, 2, 4, resumed_from=1)
    # Its retry finds epoch 2 resumed from 1 and changes nothing (the manager answers 2).
    again = apply(resumed, 5, InitNamedProducer("w", "r3", 3, 1))
    assert again.producers.named["w"] == NamedProducer(3, 2, 4, resumed_from=1)
    assert decode_snapshot(encode_snapshot(again)).producers == again.producers


def test_exhausted_epoch_gives_a_fresh_id() -> None:
    start = MetadataImage(producers=ProducerIds(
        next_id=7, named={"w": NamedProducer(2, MAX_EPOCH, 0)}), last_offset=0)
    image = apply(start, 1, InitNamedProducer("w"))
    assert image.producers.named["w"] == NamedProducer(7, 0, 1)
    assert image.producers.epochs == {7: 0}


@pytest.mark.parametrize("command", [
    AllocateProducerIds(-1, 10), AllocateProducerIds(1, 0), AllocateProducerIds(1, 10**7),
    InitNamedProducer(""), InitNamedProducer("x" * 250),
])
def test_malformed_commands_change_only_last_offset(command: Command) -> None:
    image = apply(MetadataImage(), 0, command)
    assert image == MetadataImage(last_offset=0)


producer_commands = st.lists(st.one_of(
    st.builds(AllocateProducerIds, st.integers(0, 3), st.integers(1, 50)),
    st.builds(InitNamedProducer, st.sampled_from(["a", "b", "c"])),
), max_size=30)


@settings(max_examples=100, deadline=None)
@given(producer_commands)
def test_ids_are_never_handed_out_twice(commands: list[Command]) -> None:
    image = MetadataImage()
    handed: list[int] = []
    for offset, command in enumerate(commands):
        image = apply(image, offset, command)
        if isinstance(command, AllocateProducerIds):
            first, count = image.producers.blocks[command.broker_id]
            handed += range(first, first + count)
        else:
            named = image.producers.named[command.name]
            if named.epoch == 0:
                handed.append(named.producer_id)
    assert len(handed) == len(set(handed))
    assert all(pid < image.producers.next_id for pid in handed)
    restored = decode_snapshot(encode_snapshot(image))
    assert restored == image


def test_snapshot_without_producers_reads_as_empty() -> None:
    data = b'{"version":1,"last_offset":4,"brokers":[],"topics":[]}'
    assert decode_snapshot(data) == MetadataImage(last_offset=4)


@pytest.mark.parametrize(("producers", "message"), [
    (b'{"next_id":1,"blocks":[[1,2]],"named":[]}', "block"),
    (b'{"next_id":1,"blocks":[],"named":[["a",1,2]]}', "named producer"),
    (b'{"blocks":[],"named":[]}', "missing field 'next_id'"),
])
def test_bad_producer_snapshot_is_a_clear_error(producers: bytes, message: str) -> None:
    data = b'{"version":1,"last_offset":4,"brokers":[],"topics":[],"producers":' + producers + b"}"
    with pytest.raises(ValueError, match=message):
        decode_snapshot(data)


def test_idle_names_expire_and_a_touch_keeps_one() -> None:
    from odradek.broker.metadata.commands import ExpireNamedProducers, TouchNamedProducer

    image = build(InitNamedProducer("old", at_ms=100), InitNamedProducer("busy", at_ms=100))
    busy = image.producers.named["busy"].producer_id
    # A touch of another producer id (a name taken again since) changes nothing.
    image = apply(image, 2, TouchNamedProducer("busy", busy + 100, 900))
    assert image.producers.named["busy"].last_used_ms == 100
    image = apply(image, 3, TouchNamedProducer("busy", busy, 900))
    image = apply(image, 4, ExpireNamedProducers(("old", "busy", "ghost"), 500))
    assert set(image.producers.named) == {"busy"}
    assert set(image.producers.epochs) == {busy}
    assert decode_snapshot(encode_snapshot(image)).producers == image.producers
    # Taken again after it expired: a new producer id, epoch 0.
    image = apply(image, 5, InitNamedProducer("old", at_ms=1000))
    assert image.producers.named["old"].epoch == 0
    assert image.producers.named["old"].producer_id not in (busy,)
