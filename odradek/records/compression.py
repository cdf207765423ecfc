"""Per-batch compression codecs, with Kafka's codec ids and Kafka's framing for each."""

from __future__ import annotations

import enum
import struct

import cramjam


class Compression(enum.IntEnum):
    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4

    @classmethod
    def parse(cls, name: str) -> Compression:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            names = ", ".join(c.name.lower() for c in cls)
            raise ValueError(f"unknown compression {name!r}: expected one of {names}") from None


# Kafka's Java client writes snappy in the xerial stream format: a magic header, then
# blocks each prefixed with its compressed length. Other clients read and write raw snappy.
_XERIAL_HEADER = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024


def compress(codec: Compression, data: bytes) -> bytes:
    if codec is Compression.NONE:
        return data
    if codec is Compression.GZIP:
        return bytes(cramjam.gzip.compress(data))
    if codec is Compression.SNAPPY:
        parts = [_XERIAL_HEADER]
        for start in range(0, len(data), _XERIAL_BLOCK):
            block = bytes(cramjam.snappy.compress_raw(data[start : start + _XERIAL_BLOCK]))
            parts.append(struct.pack(">i", len(block)))
            parts.append(block)
        return b"".join(parts)
    if codec is Compression.LZ4:
        return bytes(cramjam.lz4.compress(data))
    if codec is Compression.ZSTD:
        return bytes(cramjam.zstd.compress(data))
    raise ValueError(f"unknown compression codec {codec}")


def decompress(codec: Compression, data: bytes | memoryview) -> bytes:
    if codec is Compression.NONE:
        return bytes(data)
    if codec is Compression.GZIP:
        return bytes(cramjam.gzip.decompress(data))
    if codec is Compression.SNAPPY:
        raw = bytes(data)
        if not raw.startswith(_XERIAL_HEADER[:8]):
            return bytes(cramjam.snappy.decompress_raw(raw))
        out = []
        pos = 16
        while pos < len(raw):
            (size,) = struct.unpack_from(">i", raw, pos)
            pos += 4
            out.append(bytes(cramjam.snappy.decompress_raw(raw[pos : pos + size])))
            pos += size
        return b"".join(out)
    if codec is Compression.LZ4:
        return bytes(cramjam.lz4.decompress(data))
    if codec is Compression.ZSTD:
        return bytes(cramjam.zstd.decompress(data))
    raise ValueError(f"unknown compression codec {codec}")
