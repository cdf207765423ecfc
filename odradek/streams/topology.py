"""The typed DSL (Stream, GroupedStream, Table) and the topology it describes: source
topics, the operator graph, stores, repartition topics, and which topics must be read
together by one task (a join's inputs, co-partitioned)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from odradek.streams import operators as op
from odradek.streams.serdes import JSON, Serde, Windowed, WindowedSerde

K = TypeVar("K")
V = TypeVar("V")
K2 = TypeVar("K2")
V2 = TypeVar("V2")
A = TypeVar("A")


class TopologyError(ValueError):
    pass


@dataclass
class StoreSpec:
    name: str
    changelog: str
    key_serde: Serde[Any]
    value_serde: Serde[Any]
    topic: str  # a source topic of the task group the store lives in
    partition_key: Callable[[Any], bytes | None]  # the key bytes that chose the partition


@dataclass
class Repartition:
    topic: str
    upstream: frozenset[str]  # source topics whose partition count it takes


class Topology:
    def __init__(self, application_id: str) -> None:
        self.application_id = application_id
        self.sources: dict[str, op.SourceNode] = {}
        self.stores: dict[str, StoreSpec] = {}
        self.repartitions: dict[str, Repartition] = {}
        self.sinks: dict[str, frozenset[str]] = {}  # output topic -> source topics feeding it
        self._parent: dict[str, str] = {}  # union-find over source topics

    def source(self, topic: str, key_serde: Serde[Any], value_serde: Serde[Any]
               ) -> op.SourceNode:
        if topic in self.sources:
            raise TopologyError(f"topic {topic!r} is already a source of this application")
        node = self.sources[topic] = op.SourceNode(topic, key_serde, value_serde)
        self._parent[topic] = topic
        return node

    def add_store(self, name: str, key_serde: Serde[Any], value_serde: Serde[Any],
                  topic: str, partition_key: Callable[[Any], bytes | None]) -> str:
        if name in self.stores:
            raise TopologyError(f"a store named {name!r} exists already")
        changelog = f"{self.application_id}-{name}-changelog"
        self.stores[name] = StoreSpec(name, changelog, key_serde, value_serde, topic,
                                      partition_key)
        return name

    def _find(self, topic: str) -> str:
        while self._parent[topic] != topic:
            topic = self._parent[topic]
        return topic

    def co_partition(self, topics: Iterable[str]) -> None:
        """These topics are read by the same tasks (partition p of each together)."""
        roots = [self._find(t) for t in topics]
        for root in roots[1:]:
            self._parent[root] = roots[0]

    def groups(self) -> list[list[str]]:
        """The task groups: topics read together, in the order they were declared (a
        repartition topic comes after the topics that feed it)."""
        out: dict[str, list[str]] = {}
        for topic in self.sources:
            out.setdefault(self._find(topic), []).append(topic)
        return list(out.values())

    def group_of(self, topic: str) -> int:
        root = self._find(topic)
        return next(i for i, g in enumerate(self.groups()) if self._find(g[0]) == root)


class Stream(Generic[K, V]):
    """A record stream. Operators return new streams; nothing runs until the App starts."""

    def __init__(self, topology: Topology, node: op.Node, topics: frozenset[str],
                 key_serde: Serde[Any], value_serde: Serde[Any], key_changed: bool) -> None:
        self._topology, self._node, self._topics = topology, node, topics
        self.key_serde, self.value_serde = key_serde, value_serde
        self._key_changed = key_changed

    def _then(self, node: op.Node, key_serde: Serde[Any] | None = None,
              value_serde: Serde[Any] | None = None, key_changed: bool = False) -> Stream[Any, Any]:
        self._node.children.append(node)
        return Stream(self._topology, node, self._topics, key_serde or self.key_serde,
                      value_serde or self.value_serde, self._key_changed or key_changed)

    def map(self, fn: Callable[[K, V], tuple[K2, V2]], key_serde: Serde[K2] | None = None,
            value_serde: Serde[V2] | None = None) -> Stream[K2, V2]:
        return self._then(op.MapNode(fn), key_serde, value_serde, key_changed=True)

    def map_values(self, fn: Callable[[V], V2], value_serde: Serde[V2] | None = None
                   ) -> Stream[K, V2]:
        return self._then(op.MapValuesNode(fn), None, value_serde)

    def filter(self, predicate: Callable[[K, V], bool]) -> Stream[K, V]:
        return self._then(op.FilterNode(predicate))

    def flat_map(self, fn: Callable[[K, V], Iterable[tuple[K2, V2]]],
                 key_serde: Serde[K2] | None = None, value_serde: Serde[V2] | None = None
                 ) -> Stream[K2, V2]:
        return self._then(op.FlatMapNode(fn), key_serde, value_serde, key_changed=True)

    def branch(self, *predicates: Callable[[K, V], bool]) -> list[Stream[K, V]]:
        """One stream per predicate; a record goes to the first whose predicate holds."""
        node = op.BranchNode(list(predicates))
        self._node.children.append(node)
        out: list[Stream[K, V]] = []
        for _ in predicates:
            child = op.Node()
            node.children.append(child)
            out.append(Stream(self._topology, child, self._topics, self.key_serde,
                              self.value_serde, self._key_changed))
        return out

    def to(self, topic: str, key_serde: Serde[K] | None = None,
           value_serde: Serde[V] | None = None) -> None:
        """Writes the stream to topic (made, with the input's partition count, if missing)."""
        self._topology.sinks[topic] = self._topology.sinks.get(topic, frozenset()) | self._topics
        self._node.children.append(op.SinkNode(topic, key_serde or self.key_serde,
                                               value_serde or self.value_serde))

    def _repartitioned(self, name: str) -> Stream[K, V]:
        """This stream, read back through `<app>-<name>-repartition` if its key changed,
        so that records of one key reach one task."""
        if not self._key_changed:
            return self
        topic = f"{self._topology.application_id}-{name}-repartition"
        self.to(topic)
        self._topology.repartitions[topic] = Repartition(topic, self._topics)
        source = self._topology.source(topic, self.key_serde, self.value_serde)
        return Stream(self._topology, source, frozenset([topic]), self.key_serde,
                      self.value_serde, False)

    def group_by(self, key_fn: Callable[[K, V], K2], key_serde: Serde[K2] | None = None
                 ) -> GroupedStream[K2, V]:
        """Groups by a new key: the aggregation reads through a repartition topic."""
        stream = self.map(lambda k, v: (key_fn(k, v), v), key_serde=key_serde)
        return GroupedStream(stream)

    def group_by_key(self) -> GroupedStream[K, V]:
        return GroupedStream(self)

    def join(self, table: Table[K, V2], fn: Callable[[V, V2], A], name: str = "",
             value_serde: Serde[A] | None = None, left: bool = False) -> Stream[K, A]:
        """Stream-table join on the key. The stream's and table's topics must have the same
        partition count (checked when the App starts); a changed key is repartitioned
        first through `<app>-<name>-repartition`."""
        if self._key_changed and not name:
            raise TopologyError("the key changed before this join: give it a name for its "
                                "repartition topic")
        stream = self._repartitioned(f"{name}-join")
        self._topology.co_partition([*stream._topics, *table.topics])
        node = op.JoinNode(table.store, table.key_serde, table.value_serde, fn, left)
        return stream._then(node, None, value_serde or JSON)

    def left_join(self, table: Table[K, V2], fn: Callable[[V, V2 | None], A], name: str = "",
                  value_serde: Serde[A] | None = None) -> Stream[K, A]:
        return self.join(table, fn, name, value_serde, left=True)


class GroupedStream(Generic[K, V]):
    def __init__(self, stream: Stream[K, V], windows: op.TumblingWindows | None = None
                 ) -> None:
        self._stream, self._windows = stream, windows

    def windowed_by(self, windows: op.TumblingWindows) -> GroupedStream[K, V]:
        return GroupedStream(self._stream, windows)

    def aggregate(self, name: str, init: Callable[[], A], fn: Callable[[K, V, A], A],
                  value_serde: Serde[A] | None = None) -> Table[Any, A]:
        """A table of fn folded over each key's records (per window when windowed), kept
        in store `name` with changelog `<app>-<name>-changelog`."""
        return self._aggregate(name, init, fn, value_serde)

    def _aggregate(self, name: str, init: Callable[[], Any] | None,
                   fn: Callable[[Any, Any, Any], Any], value_serde: Serde[Any] | None
                   ) -> Table[Any, Any]:
        stream = self._stream._repartitioned(name)
        topology, key_serde = stream._topology, stream.key_serde
        inner = key_serde
        if self._windows is not None:
            key_serde = WindowedSerde(inner)

        def partition_key(key: Any) -> bytes | None:
            return inner.serialize(key.key if isinstance(key, Windowed) else key)

        topic = sorted(stream._topics)[0]
        topology.add_store(name, key_serde, value_serde or JSON, topic, partition_key)
        node = op.AggregateNode(name, key_serde, value_serde or JSON, init, fn, self._windows)
        stream._node.children.append(node)
        return Table(topology, node, name, stream._topics, key_serde, value_serde or JSON)

    def count(self, name: str) -> Table[Any, int]:
        return self.aggregate(name, lambda: 0, lambda _k, _v, n: n + 1)

    def reduce(self, name: str, fn: Callable[[V, V], V], value_serde: Serde[V] | None = None
               ) -> Table[Any, V]:
        """A key's first value, then fn(aggregate, value) for each next one."""
        return self._aggregate(name, None, lambda _k, v, acc: fn(acc, v), value_serde)


class Table(Generic[K, V]):
    """A keyed, changing view: its store holds the latest value per key, and its stream
    of updates (to_stream) carries every change."""

    def __init__(self, topology: Topology, node: op.Node, store: str, topics: frozenset[str],
                 key_serde: Serde[Any], value_serde: Serde[Any]) -> None:
        self._topology, self._node, self.store = topology, node, store
        self.topics, self.key_serde, self.value_serde = topics, key_serde, value_serde

    def to_stream(self) -> Stream[K, V]:
        passthrough = op.Node()
        self._node.children.append(passthrough)
        return Stream(self._topology, passthrough, self.topics, self.key_serde,
                      self.value_serde, False)

    def to(self, topic: str, key_serde: Serde[K] | None = None,
           value_serde: Serde[V] | None = None) -> None:
        self.to_stream().to(topic, key_serde, value_serde)
