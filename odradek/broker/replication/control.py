"""Raft's own entries (a new leader's no-op, membership changes) as Kafka control batches.

They take offsets in the partition log like any batch, and consumers skip them as Kafka
consumers skip transaction markers. The control record's key is Kafka's (version int16,
type int16); types 0 and 1 are Kafka's abort and commit markers, so Raft's start at 100.
Type 102 is a DeleteRecords: an ordinary entry to Raft, whose commit moves the log start
offset of every replica (its value: the new start, int64)."""

from __future__ import annotations

import struct

from odradek.raft import EntryKind
from odradek.records import BatchBuilder, decode_batch

_KEY = struct.Struct(">hh")
_OFFSET = struct.Struct(">q")
RAFT_NOOP = 100
RAFT_CONFIG = 101
LOG_START = 102
_ATTRIBUTES_AT = 21  # baseOffset, batchLength, partitionLeaderEpoch, magic, crc
_CONTROL_BIT = 0x20
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


def encode_log_start(offset: int, timestamp_ms: int) -> bytes:
    builder = BatchBuilder(control=True)
    builder.append(timestamp_ms, _KEY.pack(0, LOG_START), _OFFSET.pack(offset))
    return builder.build()


def log_start_of(batch: bytes | bytearray | memoryview) -> int | None:
    """The new log start offset a DeleteRecords batch carries; None for any other batch
    (most are not control batches, which the attributes tell without decoding)."""
    if len(batch) <= _ATTRIBUTES_AT + 1 or not batch[_ATTRIBUTES_AT + 1] & _CONTROL_BIT:
        return None
    records = decode_batch(bytes(batch), verify=False)
    key = records[0].key if records else None
    value = records[0].value if records else None
    if (key is None or len(key) < _KEY.size or _KEY.unpack_from(key)[1] != LOG_START
            or value is None or len(value) != _OFFSET.size):
        return None
    return int(_OFFSET.unpack(value)[0])
