"""How `odradek consume` prints a record: text, JSON, or a kcat -f format string."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

from odradek.client.consumer import ConsumerRecord

Formatter = Callable[[ConsumerRecord], bytes]

# kcat -f's tokens; %% is a literal percent sign.
FORMAT_TOKENS = {
    "t": "topic", "p": "partition", "o": "offset", "k": "key", "s": "value (payload)",
    "h": "headers as k=v,k=v", "T": "timestamp, ms since the epoch", "S": "value size",
    "K": "key size", "%": "a percent sign",
}
FORMAT_HELP = ("print each record as FMT, as kcat -f: " + ", ".join(
    f"%{token} {meaning}" for token, meaning in FORMAT_TOKENS.items())
    + "; \\n and \\t as escapes; no newline is added (end FMT with \\n)")


def _text_or_b64(data: bytes | None) -> tuple[str | None, bool]:
    if data is None:
        return None, False
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), True


def record_to_json(r: ConsumerRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"topic": r.topic, "partition": r.partition, "offset": r.offset,
                           "timestamp": r.timestamp}
    for name, data in (("key", r.key), ("value", r.value)):
        text, b64 = _text_or_b64(data)
        out[name] = text
        if b64:
            out[f"{name}_encoding"] = "base64"
    headers = []
    for hname, hval in r.headers:
        text, b64 = _text_or_b64(hval)
        h: dict[str, Any] = {"key": hname, "value": text}
        if b64:
            h["value_encoding"] = "base64"
        headers.append(h)
    out["headers"] = headers
    return out


def json_line(r: ConsumerRecord) -> bytes:
    return json.dumps(record_to_json(r), ensure_ascii=False).encode()


def headers_text(r: ConsumerRecord, pair: bytes = b"=", between: bytes = b",") -> bytes:
    return between.join(name.encode() + pair + (b"" if value is None else value)
                        for name, value in r.headers)


def _field(token: str) -> Formatter:
    fields: dict[str, Formatter] = {
        "t": lambda r: r.topic.encode(),
        "p": lambda r: b"%d" % r.partition,
        "o": lambda r: b"%d" % r.offset,
        "k": lambda r: r.key or b"",
        "s": lambda r: r.value or b"",
        "h": headers_text,
        "T": lambda r: b"%d" % r.timestamp,
        "S": lambda r: b"%d" % (-1 if r.value is None else len(r.value)),
        "K": lambda r: b"%d" % (-1 if r.key is None else len(r.key)),
    }
    return fields[token]


def compile_format(fmt: str) -> Formatter:
    """kcat's -f: literal text and %-tokens; an unknown token is an error, not output."""
    parts: list[bytes | Formatter] = []
    for piece in re.split(r"(%.?)", fmt):
        if not piece:
            continue
        if not piece.startswith("%"):
            parts.append(piece.encode())
        elif piece == "%%":
            parts.append(b"%")
        elif len(piece) == 2 and piece[1] in FORMAT_TOKENS:
            parts.append(_field(piece[1]))
        else:
            raise ValueError(f"unknown token {piece!r} in the format string (known: "
                             + " ".join(f"%{t}" for t in FORMAT_TOKENS) + ")")

    def render(r: ConsumerRecord) -> bytes:
        return b"".join(p if isinstance(p, bytes) else p(r) for p in parts)

    return render


def text_formatter(print_key: bool, key_sep: bytes, print_timestamp: bool,
                   print_headers: bool) -> Formatter:
    """One line per record as kafka-console-consumer.sh prints it: CreateTime:MS, then the
    headers (k:v,k:v or NO_HEADERS), then the key, each followed by a tab (key: SEP), then
    the value; null for a missing key or value."""

    def render(r: ConsumerRecord) -> bytes:
        line = b""
        if print_timestamp:
            line += b"CreateTime:%d\t" % r.timestamp
        if print_headers:
            line += (headers_text(r, b":") if r.headers else b"NO_HEADERS") + b"\t"
        if print_key:
            line += (b"null" if r.key is None else r.key) + key_sep
        return line + (b"null" if r.value is None else r.value)

    return render
