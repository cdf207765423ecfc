"""Producer ids in the metadata image: the next free id, each broker's latest block, and
the named producers (name -> id, epoch).

Ids are never reused: a broker reserves a block with AllocateProducerIds and hands its ids
out itself; a named producer keeps its id and moves to the next epoch each time an
instance initialises, until the epoch runs out (int16), when it gets a fresh id."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from odradek.broker import regressions
from odradek.broker.metadata._fields import Fields
from odradek.broker.metadata.commands import (
    AllocateProducerIds,
    ExpireNamedProducers,
    InitNamedProducer,
    TouchNamedProducer,
)

MAX_EPOCH = (1 << 15) - 1
MAX_BLOCK = 1_000_000
MAX_NAME_LENGTH = 249

ProducerCommand = (AllocateProducerIds | InitNamedProducer | TouchNamedProducer
                   | ExpireNamedProducers)
PRODUCER_COMMANDS = (AllocateProducerIds, InitNamedProducer, TouchNamedProducer,
                     ExpireNamedProducers)


@dataclass(frozen=True)
class NamedProducer:
    producer_id: int
    epoch: int
    # The metadata offset of the InitNamedProducer that gave this epoch: the broker that
    # proposed it learns from it that no other instance started in between.
    init_offset: int
    # The epoch an instance resumed from to get this one (-1: a new instance took it): a
    # retry of that same resume gets this epoch again instead of being fenced by itself.
    resumed_from: int = -1
    # When an instance last initialised or wrote (wall clock of the broker that saw it;
    # 0: before names expired): a name idle long enough is forgotten.
    last_used_ms: int = 0


@dataclass(frozen=True)
class ProducerIds:
    next_id: int = 0
    # broker id -> (first id, count) of the block it reserved last
    blocks: dict[int, tuple[int, int]] = field(default_factory=dict)
    named: dict[str, NamedProducer] = field(default_factory=dict)
    # producer id -> current epoch of the named producers (derived from `named`): partition
    # leaders refuse older epochs at once, even where the new instance has not written.
    epochs: dict[int, int] = field(default_factory=dict)


def apply_producer_command(state: ProducerIds, offset: int,
                           cmd: ProducerCommand) -> ProducerIds | None:
    """The new state, or None when the command changes nothing (malformed)."""
    if isinstance(cmd, AllocateProducerIds):
        if cmd.broker_id < 0 or not 1 <= cmd.count <= MAX_BLOCK:
            return None
        blocks = dict(state.blocks)
        blocks[cmd.broker_id] = (state.next_id, cmd.count)
        return replace(state, next_id=state.next_id + cmd.count, blocks=blocks)
    if isinstance(cmd, TouchNamedProducer):
        current = state.named.get(cmd.name)
        if current is None or current.producer_id != cmd.producer_id \
                or current.last_used_ms >= cmd.at_ms:
            return None
        return replace(state, named={**state.named,
                                     cmd.name: replace(current, last_used_ms=cmd.at_ms)})
    if isinstance(cmd, ExpireNamedProducers):
        # Each name once: apply must be total, and a name listed twice was popped twice.
        gone = [n for n in dict.fromkeys(cmd.names) if n in state.named
                and state.named[n].last_used_ms < cmd.idle_before_ms]
        if not gone:
            return None
        named, epochs = dict(state.named), dict(state.epochs)
        for name in gone:
            epochs.pop(named.pop(name).producer_id, None)
        return replace(state, named=named, epochs=epochs)
    if not cmd.name or len(cmd.name) > MAX_NAME_LENGTH:
        return None
    old = state.named.get(cmd.name)
    resuming = cmd.expected_epoch >= 0
    if resuming and (
            old is None or (old.producer_id, old.epoch) != (cmd.expected_id, cmd.expected_epoch)
    ) and regressions.FENCED_PRODUCER_RESUMES not in regressions.reintroduced:
        return None  # a newer instance started (or this resume was applied): no change
    next_id = state.next_id
    resumed_from = cmd.expected_epoch if resuming else -1
    if old is not None and old.epoch < MAX_EPOCH:
        new = NamedProducer(old.producer_id, old.epoch + 1, offset, resumed_from, cmd.at_ms)
    else:
        new = NamedProducer(next_id, 0, offset, resumed_from, cmd.at_ms)
        next_id += 1
    named = dict(state.named)
    named[cmd.name] = new
    epochs = dict(state.epochs)
    if old is not None:
        epochs.pop(old.producer_id, None)
    epochs[new.producer_id] = new.epoch
    return replace(state, next_id=next_id, named=named, epochs=epochs)


def encode_producer_ids(state: ProducerIds) -> dict[str, Any]:
    return {
        "next_id": state.next_id,
        "blocks": [[b, first, count] for b, (first, count) in sorted(state.blocks.items())],
        "named": [[name, p.producer_id, p.epoch, p.init_offset, p.resumed_from,
                   p.last_used_ms] for name, p in sorted(state.named.items())],
    }


def decode_producer_ids(raw: Any) -> ProducerIds:
    f = Fields("metadata snapshot producer ids", raw)
    blocks: dict[int, tuple[int, int]] = {}
    for row in f.get_list("blocks"):
        if not (isinstance(row, list) and len(row) == 3
                and all(isinstance(x, int) and not isinstance(x, bool) for x in row)):
            raise ValueError(f"metadata snapshot producer id block {row!r} is not 3 integers")
        blocks[row[0]] = (row[1], row[2])
    named: dict[str, NamedProducer] = {}
    for row in f.get_list("named"):
        # Four fields before resumes were recorded, five before names expired.
        if not (isinstance(row, list) and len(row) in (4, 5, 6) and isinstance(row[0], str)
                and all(isinstance(x, int) and not isinstance(x, bool) for x in row[1:])):
            raise ValueError(f"metadata snapshot named producer {row!r} is malformed")
        named[row[0]] = NamedProducer(*row[1:4], *(row[4:] or [-1]))
    epochs = {p.producer_id: p.epoch for p in named.values()}
    return ProducerIds(f.get_int("next_id"), blocks, named, epochs)
