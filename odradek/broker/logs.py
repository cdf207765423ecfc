"""What of a client's input may go into a log line or an error message: a bounded
prefix. Clients choose their strings (names, ids, peers' user agents), and a log line
that carries one whole lets any of them fill the disk or stall the loop formatting it."""

from __future__ import annotations

LOGGED_CHARS = 200


def clip(text: object, limit: int = LOGGED_CHARS) -> str:
    """`text` (str() of it) cut to `limit` characters with an ellipsis and its length."""
    s = text if isinstance(text, str) else str(text)
    return s if len(s) <= limit else f"{s[:limit]}... ({len(s)} characters)"
