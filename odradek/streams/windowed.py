"""Session aggregation and suppression until a window closes (time-window aggregation is
operators.AggregateNode)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from odradek.streams.operators import Context, Node
from odradek.streams.serdes import Serde, Windowed, WindowedSerde
from odradek.streams.windows import SessionWindows, TimeWindows, encode_ts


def _prefix_end(prefix: bytes) -> bytes | None:
    """The least byte string above every string that starts with prefix (None: none)."""
    stripped = prefix.rstrip(b"\xff")
    return stripped[:-1] + bytes([stripped[-1] + 1]) if stripped else None


class SessionAggregateNode(Node):
    """Folds each key's records into sessions (store keys Windowed(key, start, end)). A
    record within gap of one or more sessions of its key merges them: their aggregates
    are combined with merge (in start order), the old sessions are deleted and forwarded
    as None, and the merged session, with the record folded in, is put and forwarded."""

    def __init__(self, store: str, key_serde: WindowedSerde[Any], value_serde: Serde[Any],
                 init: Callable[[], Any] | None, fn: Callable[[Any, Any, Any], Any],
                 merge: Callable[[Any, Any, Any], Any], windows: SessionWindows) -> None:
        super().__init__()
        self.store, self.key_serde, self.value_serde = store, key_serde, value_serde
        self.init, self.fn, self.merge, self.windows = init, fn, merge, windows

    def process(self, ctx: Context, key: Any, value: Any, ts: int) -> None:
        if key is None or value is None:
            return
        if self.windows.late(ts, ctx.stream_time):
            ctx.dropped_late += 1
            return
        inner = self.key_serde.inner.serialize(key)
        assert inner is not None
        gap = self.windows.gap_ms
        start, end, agg = ts, ts, None
        for kb, vb in list(ctx.stores[self.store].range(inner, _prefix_end(inner))):
            if kb[:-16] != inner:  # a longer key with this one as its prefix
                continue
            session = self.key_serde.deserialize(kb)
            assert session is not None
            if session.start - gap <= ts <= session.end + gap:
                old = self.value_serde.deserialize(vb)
                agg = old if agg is None else self.merge(key, agg, old)
                start, end = min(start, session.start), max(end, session.end)
                ctx.put(self.store, kb, None, ts)
                self.forward(ctx, session, None, ts)
        if agg is None and self.init is not None:
            agg = self.init()
        agg = value if agg is None else self.fn(key, value, agg)
        merged = Windowed(key, start, end)
        merged_b = self.key_serde.serialize(merged)
        assert merged_b is not None
        ctx.put(self.store, merged_b, self.value_serde.serialize(agg), ts)
        self.forward(ctx, merged, agg, ts)


class SuppressNode(Node):
    """Holds a windowed table's updates until their window closes, then forwards each
    window's final value once. The buffer is a store (with its changelog), keyed by close
    time then window, so a restarted task still emits what was held; a window deleted
    while held (a session merged into another) is dropped from the buffer unseen."""

    def __init__(self, store: str, key_serde: Serde[Any], value_serde: Serde[Any],
                 windows: TimeWindows | SessionWindows) -> None:
        super().__init__()
        self.store, self.key_serde, self.value_serde = store, key_serde, value_serde
        self.windows = windows

    def process(self, ctx: Context, key: Any, value: Any, ts: int) -> None:
        kb = self.key_serde.serialize(key)
        if kb is None:
            return
        entry = encode_ts(self.windows.close_time(key.start, key.end)) + kb
        ctx.put(self.store, entry, self.value_serde.serialize(value), ts)
        self.on_time(ctx)

    def on_time(self, ctx: Context) -> None:
        """Forwards and forgets every held window closed at the stream time now."""
        closed = list(ctx.stores[self.store].range(None, encode_ts(ctx.stream_time + 1)))
        for entry, vb in closed:
            ctx.put(self.store, entry, None, ctx.stream_time)
            self.forward(ctx, self.key_serde.deserialize(entry[8:]),
                         self.value_serde.deserialize(vb), ctx.stream_time)
