"""Serdes: how keys and values become the bytes of records and stores, and back.

Any object with `serialize(value) -> bytes | None` and `deserialize(data) -> value` is a
serde (a Protocol, so user classes need no base class). None passes through untouched
both ways: a None value is a tombstone in tables and changelogs."""

from __future__ import annotations

import json
import struct
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


class Serde(Protocol[T]):
    def serialize(self, value: T | None) -> bytes | None: ...

    def deserialize(self, data: bytes | None) -> T | None: ...


class BytesSerde:
    def serialize(self, value: bytes | None) -> bytes | None:
        return value

    def deserialize(self, data: bytes | None) -> bytes | None:
        return data


class StrSerde:
    def serialize(self, value: str | None) -> bytes | None:
        return None if value is None else value.encode()

    def deserialize(self, data: bytes | None) -> str | None:
        return None if data is None else data.decode()


class JsonSerde:
    """Compact JSON with sorted keys, so equal values give equal bytes (compaction and
    comparisons of changelogs depend on it)."""

    def serialize(self, value: Any) -> bytes | None:
        if value is None:
            return None
        return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()

    def deserialize(self, data: bytes | None) -> Any:
        return None if data is None else json.loads(data)


class IntSerde:
    """A signed 64-bit big-endian integer (counts)."""

    def serialize(self, value: int | None) -> bytes | None:
        return None if value is None else struct.pack(">q", value)

    def deserialize(self, data: bytes | None) -> int | None:
        return None if data is None else int(struct.unpack(">q", data)[0])


M = TypeVar("M", bound="_ProtoMessage")


class _ProtoMessage(Protocol):
    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...  # noqa: N802

    def ParseFromString(self, data: bytes) -> int: ...  # noqa: N802


class ProtobufSerde(Generic[M]):
    """Messages of one protobuf class (any generated class: ProtobufSerde(MyEvent)).
    Serialized deterministically (map fields in key order), so that equal messages give
    equal bytes, as JSON's sorted keys do: compaction and the table-table join's
    "changed?" check compare bytes."""

    def __init__(self, message_type: type[M]) -> None:
        self.message_type = message_type

    def serialize(self, value: M | None) -> bytes | None:
        return None if value is None else value.SerializeToString(deterministic=True)

    def deserialize(self, data: bytes | None) -> M | None:
        if data is None:
            return None
        message = self.message_type()
        message.ParseFromString(data)
        return message


class Windowed(Generic[T]):
    """The key of a windowed aggregate: the record key and its window [start, end)."""

    __slots__ = ("key", "start", "end")

    def __init__(self, key: T, start: int, end: int) -> None:
        self.key, self.start, self.end = key, start, end

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Windowed) and (self.key, self.start, self.end) == (
            other.key, other.start, other.end)

    def __hash__(self) -> int:
        return hash((self.key, self.start, self.end))

    def __repr__(self) -> str:
        return f"Windowed({self.key!r}, {self.start}, {self.end})"


class WindowedSerde(Generic[T]):
    """The inner key's bytes, then start and end as 8-byte big-endian integers: the keys of
    one record key sort by window start in a store."""

    def __init__(self, inner: Serde[T]) -> None:
        self.inner = inner

    def serialize(self, value: Windowed[T] | None) -> bytes | None:
        if value is None:
            return None
        return (self.inner.serialize(value.key) or b"") + struct.pack(
            ">qq", value.start, value.end)

    def deserialize(self, data: bytes | None) -> Windowed[T] | None:
        if data is None:
            return None
        start, end = struct.unpack(">qq", data[-16:])
        key = self.inner.deserialize(data[:-16])
        return Windowed(key, start, end)  # type: ignore[arg-type]


BYTES = BytesSerde()
STR = StrSerde()
JSON = JsonSerde()
INT = IntSerde()
