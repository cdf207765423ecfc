"""Per-record semantics of every operator: pure objects that take a record, read and write
the task's stores through a Context, and push results to their children. No I/O: the
runtime and the in-memory driver (testing.py) turn the Context's outputs into records."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from odradek.streams.serdes import Serde, Windowed
from odradek.streams.stores import KeyValueStore
from odradek.streams.windows import TimeWindows


@dataclass(frozen=True)
class Output:
    """A record a task wants written: to a sink, a repartition or a changelog topic.
    partition None means "by key" (the client's murmur2 partitioner)."""

    topic: str
    key: bytes | None
    value: bytes | None
    timestamp: int
    partition: int | None = None
    # A changelog record's cause: the input record's topic and offset (task.encode_source)
    source: bytes | None = None


@dataclass
class Context:
    """One task's view while it processes: its partition, stores and pending outputs."""

    partition: int
    stores: dict[str, KeyValueStore]
    changelogs: dict[str, str]  # store name -> changelog topic
    outputs: list[Output] = field(default_factory=list)
    stream_time: int = -1  # highest record timestamp this task has seen
    dropped_late: int = 0
    source: bytes | None = None  # the input record being processed (task.encode_source)

    def put(self, store: str, key: bytes, value: bytes | None, timestamp: int) -> None:
        """Writes the store and its changelog record (same partition as the task)."""
        if value is None:
            self.stores[store].delete(key)
        else:
            self.stores[store].put(key, value)
        self.outputs.append(Output(self.changelogs[store], key, value, timestamp,
                                   self.partition, self.source))


class Node:
    def __init__(self) -> None:
        self.children: list[Node] = []

    def process(self, ctx: Context, key: Any, value: Any, ts: int) -> None:
        self.forward(ctx, key, value, ts)

    def forward(self, ctx: Context, key: Any, value: Any, ts: int) -> None:
        for child in self.children:
            child.process(ctx, key, value, ts)


class SourceNode(Node):
    def __init__(self, topic: str, key_serde: Serde[Any], value_serde: Serde[Any]) -> None:
        super().__init__()
        self.topic, self.key_serde, self.value_serde = topic, key_serde, value_serde

    def receive(self, ctx: Context, key: bytes | None, value: bytes | None, ts: int) -> None:
        ctx.stream_time = max(ctx.stream_time, ts)
        self.forward(ctx, self.key_serde.deserialize(key), self.value_serde.deserialize(value),
                     ts)


class MapNode(Node):
    def __init__(self, fn: Callable[[Any, Any], tuple[Any, Any]]) -> None:
        super().__init__()
        self.fn = fn

    def process(self, ctx: Context, key: Any, value: Any, ts: int) -> None:
        k, v = self.fn(key, value)
        self.forward(ctx, k, v, ts)


class MapValuesNode(Node):
    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.fn = fn

    def process(self, ctx: Context, key: Any, value: Any, ts: int) -> None:
        self.forward(ctx, key, self.fn(value), ts)


class FilterNode(Node):
    def __init__(self, predicate: Callable[[Any, Any], bool]) -> None:
        super().__init__()
        self.predicate = predicate

    def process(self, ctx: Context, key: Any, value: Any, ts: int) -> None:
        if self.predicate(key, value):
            self.forward(ctx, key, value, ts)


class FlatMapNode(Node):
    def __init__(self, fn: Callable[[Any, Any], Iterable[tuple[Any, Any]]]) -> None:
        super().__init__()
        self.fn = fn

    def process(self, ctx: Context, key: Any, value: Any, ts: int) -> None:
        for k, v in self.fn(key, value):
            self.forward(ctx, k, v, ts)


class BranchNode(Node):
    """children[i] gets the records whose first true predicate is predicates[i]; records
    no predicate accepts are dropped."""

    def __init__(self, predicates: list[Callable[[Any, Any], bool]]) -> None:
        super().__init__()
        self.predicates = predicates

    def process(self, ctx: Context, key: Any, value: Any, ts: int) -> None:
        for predicate, child in zip(self.predicates, self.children, strict=True):
            if predicate(key, value):
                child.process(ctx, key, value, ts)
                return


class SinkNode(Node):
    def __init__(self, topic: str, key_serde: Serde[Any], value_serde: Serde[Any]) -> None:
        super().__init__()
        self.topic, self.key_serde, self.value_serde = topic, key_serde, value_serde

    def process(self, ctx: Context, key: Any, value: Any, ts: int) -> None:
        ctx.outputs.append(Output(self.topic, self.key_serde.serialize(key),
                                  self.value_serde.serialize(value), ts))


class AggregateNode(Node):
    """Folds the records of each key (or key and window) into the store, and forwards
    every new aggregate as a table update; init None makes it a reduce. Records with a
    None key or value are skipped, as there is nothing to group them by or fold."""

    def __init__(self, store: str, key_serde: Serde[Any], value_serde: Serde[Any],
                 init: Callable[[], Any] | None, fn: Callable[[Any, Any, Any], Any],
                 windows: TimeWindows | None = None) -> None:
        super().__init__()
        self.store, self.key_serde, self.value_serde = store, key_serde, value_serde
        self.init, self.fn, self.windows = init, fn, windows

    def process(self, ctx: Context, key: Any, value: Any, ts: int) -> None:
        if key is None or value is None:
            return
        if self.windows is None:
            self._fold(ctx, key, key, value, ts)
            return
        size = self.windows.size_ms
        for start in self.windows.starts_for(ts):
            if self.windows.closed(start, ctx.stream_time):
                ctx.dropped_late += 1
            else:
                self._fold(ctx, Windowed(key, start, start + size), key, value, ts)

    def _fold(self, ctx: Context, key: Any, record_key: Any, value: Any, ts: int) -> None:
        kb = self.key_serde.serialize(key)
        assert kb is not None
        old = self.value_serde.deserialize(ctx.stores[self.store].get(kb))
        if old is None and self.init is None:  # a reduce: the first value is the aggregate
            new = value
        else:
            old = self.init() if old is None else old  # type: ignore[misc]
            new = self.fn(record_key, value, old)
        ctx.put(self.store, kb, self.value_serde.serialize(new), ts)
        self.forward(ctx, key, new, ts)


class TableSourceNode(Node):
    """Upserts a topic's records into the store (a None value deletes the key)."""

    def __init__(self, store: str, key_serde: Serde[Any], value_serde: Serde[Any]) -> None:
        super().__init__()
        self.store, self.key_serde, self.value_serde = store, key_serde, value_serde

    def process(self, ctx: Context, key: Any, value: Any, ts: int) -> None:
        kb = self.key_serde.serialize(key)
        if kb is None:
            return
        ctx.put(self.store, kb, self.value_serde.serialize(value), ts)
        self.forward(ctx, key, value, ts)


class JoinNode(Node):
    """Stream-table join: each stream record looks its key (or key_fn(key, value), for a
    global table) up in the table's store as the table stands when the record is processed
    (no retroactive joins). Inner: records with no table row are dropped; left: they join
    with None."""

    def __init__(self, store: str, key_serde: Serde[Any], value_serde: Serde[Any],
                 fn: Callable[[Any, Any], Any], left: bool,
                 key_fn: Callable[[Any, Any], Any] | None = None) -> None:
        super().__init__()
        self.store, self.key_serde, self.value_serde = store, key_serde, value_serde
        self.fn, self.left, self.key_fn = fn, left, key_fn

    def process(self, ctx: Context, key: Any, value: Any, ts: int) -> None:
        lookup = key if self.key_fn is None else self.key_fn(key, value)
        kb = None if lookup is None else self.key_serde.serialize(lookup)
        row = None if kb is None else self.value_serde.deserialize(ctx.stores[self.store].get(kb))
        if row is None and not self.left:
            return
        self.forward(ctx, key, self.fn(value, row), ts)
