"""A RecordBatch v2 encoder tuned for the producer's hot path.

It writes the same bytes as odradek.records.BatchBuilder (a test holds them equal) but
encodes the varints of small numbers by table lookup, which halves the cost per record."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import crc32c

from odradek.records import BATCH_HEADER_SIZE, Compression
from odradek.records.compression import compress

_HEADER = struct.Struct(">qiibIhiqqqhii")
_LOG_OVERHEAD = 12
_MAGIC = 2
_CRC_START = 21
_ATTR_CONTROL = 0x20


def _zigzag_varint(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value & ~0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_TABLE_SIZE = 1 << 14
_SMALL = [_zigzag_varint(n) for n in range(_TABLE_SIZE)]
_NULL = _zigzag_varint(-1)


def varint(value: int) -> bytes:
    if 0 <= value < _TABLE_SIZE:
        return _SMALL[value]
    return _zigzag_varint(value)


class FastBatchBuilder:
    """Accumulates records for one batch; build() returns the encoded batch."""

    __slots__ = ("compression", "control", "_body", "_count", "_base_ts", "_max_ts")

    def __init__(self, compression: Compression = Compression.NONE, control: bool = False) -> None:
        self.compression = compression
        self.control = control
        self._body = bytearray()
        self._count = 0
        self._base_ts = 0
        self._max_ts = -1

    def __len__(self) -> int:
        return self._count

    @property
    def size_estimate(self) -> int:
        return BATCH_HEADER_SIZE + len(self._body)

    def append(
        self,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] = (),
    ) -> None:
        count = self._count
        if count == 0:
            self._base_ts = timestamp
        if timestamp > self._max_ts:
            self._max_ts = timestamp
        delta = timestamp - self._base_ts
        ts = _SMALL[delta] if 0 <= delta < _TABLE_SIZE else _zigzag_varint(delta)
        off = _SMALL[count] if count < _TABLE_SIZE else _zigzag_varint(count)
        if key is None:
            klen = _NULL
            key = b""
        else:
            n = len(key)
            klen = _SMALL[n] if n < _TABLE_SIZE else _zigzag_varint(n)
        if value is None:
            vlen = _NULL
            value = b""
        else:
            n = len(value)
            vlen = _SMALL[n] if n < _TABLE_SIZE else _zigzag_varint(n)
        if headers:
            parts = [varint(len(headers))]
            for name, hvalue in headers:
                raw = name.encode()
                parts.append(varint(len(raw)))
                parts.append(raw)
                if hvalue is None:
                    parts.append(_NULL)
                else:
                    parts.append(varint(len(hvalue)))
                    parts.append(hvalue)
            hdr = b"".join(parts)
        else:
            hdr = b"\x00"
        length = 1 + len(ts) + len(off) + len(klen) + len(key) + len(vlen) + len(value) + len(hdr)
        body = self._body
        body += _SMALL[length] if length < _TABLE_SIZE else _zigzag_varint(length)
        body += b"\x00"
        body += ts
        body += off
        body += klen
        body += key
        body += vlen
        body += value
        body += hdr
        self._count = count + 1

    def build(self) -> bytes:
        if self._count == 0:
            raise ValueError("a batch needs at least one record")
        payload: bytes | bytearray = self._body
        if self.compression is not Compression.NONE:
            payload = compress(self.compression, bytes(self._body))
        attributes = int(self.compression) | (_ATTR_CONTROL if self.control else 0)
        out = bytearray(BATCH_HEADER_SIZE)
        _HEADER.pack_into(
            out, 0, 0, BATCH_HEADER_SIZE - _LOG_OVERHEAD + len(payload), -1, _MAGIC, 0,
            attributes, self._count - 1, self._base_ts, self._max_ts, -1, -1, -1, self._count)
        out += payload
        struct.pack_into(">I", out, 17, crc32c.crc32c(memoryview(out)[_CRC_START:]))
        return bytes(out)
