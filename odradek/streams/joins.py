"""Table-table and windowed stream-stream joins (the stream-table join is
operators.JoinNode). Both are pairs of nodes, one under each input, sharing stores."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any, Literal

from odradek.streams.operators import Context, Node
from odradek.streams.serdes import Serde
from odradek.streams.windows import JoinWindows, decode_ts, encode_ts, length_prefixed

How = Literal["inner", "left", "outer"]


class TableJoinNode(Node):
    """One side of a table-table join. Its input is this side's table updates (its store
    already holds the new value); it reads the other side's store and keeps the result
    table in its own store, forwarding a change only when the result changes: a key that
    leaves the result is forwarded as None (a tombstone), a recomputation equal to what
    the result holds is not forwarded at all."""

    def __init__(self, this_store: str, other_store: str, result_store: str, is_left: bool,
                 fn: Callable[[Any, Any], Any], how: How, key_serde: Serde[Any],
                 other_serde: Serde[Any], result_serde: Serde[Any]) -> None:
        super().__init__()
        self.this_store, self.other_store, self.result_store = this_store, other_store, result_store
        self.is_left, self.fn, self.how = is_left, fn, how
        self.key_serde, self.other_serde, self.result_serde = key_serde, other_serde, result_serde

    def process(self, ctx: Context, key: Any, value: Any, ts: int) -> None:
        kb = self.key_serde.serialize(key)
        if kb is None:
            return
        other = self.other_serde.deserialize(ctx.stores[self.other_store].get(kb))
        left, right = (value, other) if self.is_left else (other, value)
        present = {"inner": left is not None and right is not None,
                   "left": left is not None,
                   "outer": left is not None or right is not None}[self.how]
        new = self.fn(left, right) if present else None
        new_b = None if new is None else self.result_serde.serialize(new)
        if new_b == ctx.stores[self.result_store].get(kb):
            return
        ctx.put(self.result_store, kb, new_b, ts)
        self.forward(ctx, key, new, ts)


def _frames(data: bytes) -> Iterator[bytes]:
    i = 0
    while i < len(data):
        (n,) = struct.unpack_from(">I", data, i)
        yield data[i + 4:i + 4 + n]
        i += 4 + n


def _frame(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


# A side's buffer, in one store: b"k" + key + ts -> its values (framed, arrival order),
# read by key and time range; b"t" + ts + key -> b"", the expiry index, read by time.
_BY_KEY, _BY_TIME = b"k", b"t"


class StreamJoinNode(Node):
    """One side of a windowed inner stream-stream join: a record joins every record of
    the other side with its key inside the window (see JoinWindows), then is buffered for
    the other side's later records. Outputs carry the later timestamp of the two. Late
    records (past the window and grace, on stream time) are dropped; buffered records
    are expired once no record that is not late can match them."""

    def __init__(self, this_store: str, other_store: str, is_left: bool,
                 windows: JoinWindows, fn: Callable[[Any, Any], Any], key_serde: Serde[Any],
                 this_serde: Serde[Any], other_serde: Serde[Any]) -> None:
        super().__init__()
        self.this_store, self.other_store, self.is_left = this_store, other_store, is_left
        self.windows, self.fn, self.key_serde = windows, fn, key_serde
        self.this_serde, self.other_serde = this_serde, other_serde

    def process(self, ctx: Context, key: Any, value: Any, ts: int) -> None:
        kb = self.key_serde.serialize(key)
        vb = self.this_serde.serialize(value)
        if kb is None or vb is None:
            return
        w = self.windows
        ahead = w.after_ms if self.is_left else w.before_ms
        behind = w.before_ms if self.is_left else w.after_ms
        if ts + ahead + w.grace_ms < ctx.stream_time:
            ctx.dropped_late += 1
            return
        prefix = _BY_KEY + length_prefixed(kb)
        matches = ctx.stores[self.other_store].range(prefix + encode_ts(ts - behind),
                                                     prefix + encode_ts(ts + ahead + 1))
        for entry, values in list(matches):
            other_ts = decode_ts(entry[-8:])
            for other_b in _frames(values):
                other = self.other_serde.deserialize(other_b)
                left, right = (value, other) if self.is_left else (other, value)
                self.forward(ctx, key, self.fn(left, right), max(ts, other_ts))
        store = ctx.stores[self.this_store]
        entry = prefix + encode_ts(ts)
        held = store.get(entry)
        if held is None:
            ctx.put(self.this_store, _BY_TIME + encode_ts(ts) + length_prefixed(kb), b"", ts)
        ctx.put(self.this_store, entry, (held or b"") + _frame(vb), ts)
        cutoff = ctx.stream_time - w.retention()
        for name in (self.this_store, self.other_store):
            self._expire(ctx, name, cutoff, ts)

    @staticmethod
    def _expire(ctx: Context, store: str, cutoff: int, ts: int) -> None:
        """Deletes the buffered records older than cutoff (both entries of each)."""
        for index, _ in list(ctx.stores[store].range(_BY_TIME, _BY_TIME + encode_ts(cutoff))):
            ctx.put(store, index, None, ts)
            ctx.put(store, _BY_KEY + index[9:] + index[1:9], None, ts)
