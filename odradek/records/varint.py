"""Zigzag varints as Kafka's record format uses them."""

from __future__ import annotations


def encode_varint(value: int, out: bytearray) -> None:
    value = (value << 1) ^ (value >> 63)
    while value & ~0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def decode_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Returns (value, position after it); raises IndexError past the end."""
    shift = 0
    result = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
    return (result >> 1) ^ -(result & 1), pos


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    encode_varint(value, out)
    return bytes(out)


# Small numbers (lengths, offset and timestamp deltas) are looked up, not computed: the
# producer encodes every record, and this halves the cost of one.
_TABLE_SIZE = 1 << 14
_SMALL = [_varint_bytes(n) for n in range(_TABLE_SIZE)]


def varint_bytes(value: int) -> bytes:
    """The zigzag varint of value, as bytes."""
    if 0 <= value < _TABLE_SIZE:
        return _SMALL[value]
    return _varint_bytes(value)
