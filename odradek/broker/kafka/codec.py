"""Kafka frames to kio request objects and kio responses back to frames.

kio (generated from Kafka's own message schemas) gives a dataclass per API, version and
direction; this module adds the framing, the request and response headers, the versions
this listener serves, and ``make``, which builds any version of a response from one set of
values (each version keeps the fields it has)."""

from __future__ import annotations

import datetime
import functools
import io
import struct
import typing
from collections.abc import Iterator
from dataclasses import MISSING, dataclass, fields, is_dataclass
from types import ModuleType
from typing import Any

from kio.index import load_payload_module, load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType

API_VERSIONS = 18
SASL_HANDSHAKE = 17
UNSUPPORTED_VERSION = 35

# api key -> (lowest, highest) version served. The low ends are kio's (it dropped what
# Kafka 4 removed); the high ends are those whose fields the handlers fill. Fetch stops
# at 12 because 13 names topics by id, which Odradek's metadata does not give clients.
SUPPORTED: dict[int, tuple[int, int]] = {
    0: (3, 9),    # Produce
    1: (4, 12),   # Fetch
    2: (1, 7),    # ListOffsets
    3: (0, 12),   # Metadata
    8: (2, 8),    # OffsetCommit
    9: (1, 7),    # OffsetFetch
    10: (0, 4),   # FindCoordinator
    11: (0, 7),   # JoinGroup
    12: (0, 4),   # Heartbeat
    13: (0, 4),   # LeaveGroup
    14: (0, 5),   # SyncGroup
    15: (0, 5),   # DescribeGroups
    16: (0, 4),   # ListGroups
    17: (1, 1),   # SaslHandshake (v0's unframed tokens are not served)
    18: (0, 3),   # ApiVersions
    19: (2, 7),   # CreateTopics
    20: (1, 5),   # DeleteTopics
    21: (0, 2),   # DeleteRecords
    22: (0, 4),   # InitProducerId
    23: (2, 4),   # OffsetForLeaderEpoch
    29: (1, 3),   # DescribeAcls
    30: (1, 3),   # CreateAcls
    31: (1, 3),   # DeleteAcls
    32: (1, 4),   # DescribeConfigs
    33: (0, 2),   # AlterConfigs
    36: (0, 2),   # SaslAuthenticate
    37: (0, 3),   # CreatePartitions
    42: (0, 2),   # DeleteGroups
    43: (0, 2),   # ElectLeaders
    44: (0, 1),   # IncrementalAlterConfigs
    47: (0, 0),   # OffsetDelete
    50: (0, 0),   # DescribeUserScramCredentials
    51: (0, 0),   # AlterUserScramCredentials
    60: (0, 1),   # DescribeCluster
    68: (0, 1),   # ConsumerGroupHeartbeat (KIP-848)
}

_HEAD = struct.Struct(">hhi")
_LENGTH = struct.Struct(">i")


class MalformedRequest(ValueError):
    """A frame that is not a request this listener can read: the connection is closed."""


@dataclass(frozen=True)
class Header:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


@dataclass(frozen=True)
class Request:
    header: Header
    body: Any  # the kio request object; None when the API or version is not served


@functools.cache
def api_name(api_key: int) -> str:
    """Kafka's name of a served API (its request class without "Request")."""
    low, _ = SUPPORTED[api_key]
    return str(load_request_schema(api_key, low).__name__).removesuffix("Request")


def error_names(response: Any) -> Iterator[str]:
    """Kafka's name of every error code set in a response (top level, per topic, per
    partition, per group), for the error counts: the handlers answer errors in their
    responses, not by raising."""
    stack = [response]
    while stack:
        item = stack.pop()
        for f in fields(item):
            value = getattr(item, f.name)
            if f.name == "error_code":
                if value:
                    yield _error_name(int(value))
            elif isinstance(value, tuple):
                stack.extend(v for v in value if is_dataclass(v))
            elif is_dataclass(value):
                stack.append(value)


@functools.cache
def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name.lower()
    except ValueError:
        return f"code_{code}"


def served(api_key: int, version: int) -> bool:
    low, high = SUPPORTED.get(api_key, (0, -1))
    return low <= version <= high


def decode_request(frame: bytes) -> Request:
    """The header and, for a served API and version, the body."""
    if len(frame) < _HEAD.size + 2:
        raise MalformedRequest(f"a request of {len(frame)} bytes is shorter than its header")
    api_key, version, correlation_id = _HEAD.unpack_from(frame)
    (client_len,) = struct.unpack_from(">h", frame, _HEAD.size)
    offset = _HEAD.size + 2
    client_id: str | None = None
    if client_len >= 0:
        if offset + client_len > len(frame):
            raise MalformedRequest("the client id runs past the end of the request")
        client_id = frame[offset:offset + client_len].decode("utf-8", "replace")
        offset += client_len
    header = Header(api_key, version, correlation_id, client_id)
    if not served(api_key, version):
        return Request(header, None)
    cls = load_request_schema(api_key, version)
    if cls.__flexible__:  # request header v2: tagged fields after the client id
        offset = _skip_tagged_fields(frame, offset)
    try:
        body, _ = entity_reader(cls)(frame, offset)
    except Exception as exc:  # kio raises several kinds for a body that does not parse
        raise MalformedRequest(f"{cls.__name__} v{version} does not parse: {exc}") from None
    # Bytes after the body are ignored, as Kafka ignores them: librdkafka 2.16 sends
    # three after some of its Metadata v12 requests.
    return Request(header, body)


def _skip_tagged_fields(frame: bytes, offset: int) -> int:
    count, offset = _uvarint(frame, offset)
    for _ in range(count):
        _, offset = _uvarint(frame, offset)
        size, offset = _uvarint(frame, offset)
        offset += size
    if offset > len(frame):
        raise MalformedRequest("the header's tagged fields run past the end of the request")
    return offset


def _uvarint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data) or shift > 28:
            raise MalformedRequest("a varint in the header is cut off or too long")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


def encode_response(header: Header, body: Any) -> bytes:
    """The whole frame: length, response header, body."""
    out = io.BytesIO()
    out.write(b"\0\0\0\0")
    out.write(_LENGTH.pack(header.correlation_id))
    # ApiVersions answers with header v0 whatever its version, so that a client that
    # asked with a version the broker does not know can still read the answer.
    if body.__flexible__ and header.api_key != API_VERSIONS:
        out.write(b"\0")
    entity_writer(type(body))(out, body)
    frame = out.getbuffer()
    _LENGTH.pack_into(frame, 0, len(frame) - 4)
    return bytes(frame)


def encode_bare_error(header: Header, code: int) -> bytes:
    """For an API that kio has no schema of: the correlation id and an error code, which
    is what a response that starts with its error code reads as."""
    body = _LENGTH.pack(header.correlation_id) + struct.pack(">h", code)
    return _LENGTH.pack(len(body)) + body


def response_schema(api_key: int, version: int) -> type:
    return load_response_schema(api_key, version)


def response_module(api_key: int, version: int) -> ModuleType:
    return load_payload_module(api_key, version, EntityType.response)


def _coerce(kafka_type: str | None, value: Any) -> Any:
    if kafka_type == "error_code" and not isinstance(value, ErrorCode):
        return ErrorCode(int(value))
    if kafka_type in ("timedelta_i32", "timedelta_i64") and isinstance(value, int):
        return datetime.timedelta(milliseconds=value)
    if kafka_type == "datetime_i64" and isinstance(value, int):
        if value < 0:
            return None
        return datetime.datetime.fromtimestamp(value / 1000, tz=datetime.UTC)
    return value


def make(cls: type, /, **values: Any) -> Any:
    """An instance of cls from the values it has fields for; a list field not given is
    empty. Plain ints become the error codes, durations and times kio expects."""
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in values:
            kwargs[f.name] = _coerce(f.metadata.get("kafka_type"), values[f.name])
        elif f.default is MISSING and f.default_factory is MISSING:
            kind = f.metadata.get("kafka_type")
            if kind is None:
                nested_cls = _single_entity(cls, f.name)
                kwargs[f.name] = () if nested_cls is None else _zero(nested_cls, 0)
            elif kind in ("timedelta_i32", "error_code"):  # throttle time, no error
                kwargs[f.name] = _coerce(kind, 0)
    return cls(**kwargs)


def nested(module: ModuleType, class_name: str, /, **values: Any) -> Any:
    return make(getattr(module, class_name), **values)


@functools.cache
def _single_entity(cls: type, name: str) -> type | None:
    """The entity type of a field that holds one nested entity (not a list of them)."""
    hint = typing.get_type_hints(cls)[name]
    if typing.get_origin(hint) is tuple:
        return None
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and is_dataclass(candidate):
            return candidate
    return None


def error_response(api_key: int, version: int, code: int) -> Any:
    """A response of the API's schema with every field zero or empty and each error
    code set: how an API or version this listener does not serve is refused."""
    return _zero(load_response_schema(api_key, version), code)


def _zero(cls: type, code: int) -> Any:
    values: dict[str, Any] = {}
    for f in fields(cls):
        kind = f.metadata.get("kafka_type")
        if f.default is not MISSING or f.default_factory is not MISSING:
            continue
        if kind == "error_code":
            values[f.name] = code
        elif kind in ("string",):
            values[f.name] = ""
        elif kind in ("bytes", "records"):
            values[f.name] = b""
        elif kind == "bool":
            values[f.name] = False
        elif kind == "uuid":
            values[f.name] = None
        elif kind == "float64":
            values[f.name] = 0.0
        elif kind is not None:
            values[f.name] = 0
    return make(cls, **values)


def ms(value: datetime.timedelta | int) -> int:
    """A request's duration field in milliseconds."""
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    return int(value)
