"""Raft's own entries (a new leader's no-op, membership changes) as Kafka control batches.

They take offsets in the partition log like any batch, and consumers skip them as Kafka
consumers skip transaction markers. The control record's key is Kafka's (version int16,
type int16); types 0 and 1 are Kafka's abort and commit markers, so Raft's start at 100."""

from __future__ import annotations

import struct

from odradek.raft import EntryKind
from odradek.records import BatchBuilder, decode_batch

_KEY = struct.Struct(">hh")
RAFT_NOOP = 100
RAFT_CONFIG = 101
_TYPE_OF_KIND = {EntryKind.NOOP: RAFT_NOOP, EntryKind.CONFIG: RAFT_CONFIG}
_KIND_OF_TYPE = {v: k for k, v in _TYPE_OF_KIND.items()}


def encode_control(kind: EntryKind, data: bytes, timestamp_ms: int) -> bytes:
    builder = BatchBuilder(control=True)
    builder.append(timestamp_ms, _KEY.pack(0, _TYPE_OF_KIND[kind]), data)
    return builder.build()


def decode_control(batch: bytes | memoryview) -> tuple[EntryKind, bytes]:
    """The kind and payload of a control batch; Kafka's own markers read as NORMAL."""
    records = decode_batch(batch, verify=False)
    key = records[0].key if records else None
    if key is None or len(key) < _KEY.size:
        return EntryKind.NORMAL, b""
    kind = _KIND_OF_TYPE.get(_KEY.unpack_from(key)[1], EntryKind.NORMAL)
    return kind, records[0].value or b""
