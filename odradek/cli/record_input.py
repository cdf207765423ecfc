"""How `odradek produce` reads records: lines of text, or JSON lines in the shape
`odradek consume --format json` prints (so that one's output is the other's input)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from odradek.cli.common import CliError


@dataclass(frozen=True)
class InputRecord:
    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    partition: int | None = None
    timestamp_ms: int | None = None


def _bytes(obj: dict[str, Any], name: str, line_no: int) -> bytes | None:
    data = obj.get(name)
    if data is None:
        return None
    if not isinstance(data, str):
        # A JSON value that is not a string is stored as its JSON text.
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    encoding = obj.get(f"{name}_encoding")
    if encoding is None:
        return data.encode()
    if encoding != "base64":
        raise CliError(f"line {line_no}: {name}_encoding must be base64, not {encoding!r}")
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        raise CliError(f"line {line_no}: {name} is not valid base64") from None


def _headers(raw: Any, line_no: int) -> tuple[tuple[str, bytes | None], ...]:
    if raw is None:
        return ()
    if isinstance(raw, dict):  # {"k": "v"}: the short form
        raw = [{"key": k, "value": v} for k, v in raw.items()]
    if not isinstance(raw, list) or not all(isinstance(h, dict) and isinstance(h.get("key"), str)
                                            for h in raw):
        raise CliError(f"line {line_no}: headers must be a list of "
                       '{"key": ..., "value": ...} or an object of names to values')
    return tuple((h["key"], _bytes(h, "value", line_no)) for h in raw)


def _int_or_none(obj: dict[str, Any], name: str, line_no: int) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CliError(f"line {line_no}: {name} must be an integer, not {value!r}")
    return value


def parse_json_record(line: bytes, line_no: int) -> InputRecord:
    """{"key", "value", "headers", "partition", "timestamp"}; every field optional; key and
    value strings (base64 with key_encoding/value_encoding "base64") or any JSON value."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise CliError(f"line {line_no} is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise CliError(f"line {line_no}: expected a JSON object with a value, got "
                       f"{type(obj).__name__}")
    return InputRecord(_bytes(obj, "value", line_no), _bytes(obj, "key", line_no),
                       _headers(obj.get("headers"), line_no),
                       _int_or_none(obj, "partition", line_no),
                       _int_or_none(obj, "timestamp", line_no))


def parse_text_record(line: bytes, line_no: int, key: bytes | None,
                      separator: bytes | None) -> InputRecord:
    if separator is None:
        return InputRecord(line, key)
    found_key, found, value = line.partition(separator)
    if not found:
        raise CliError(f"line {line_no} has no key separator {separator.decode()!r}")
    return InputRecord(value, found_key)
