"""The typed DSL (Stream, GroupedStream, Table) and the topology it describes: source
topics, the operator graph, stores, repartition topics, and which topics must be read
together by one task (a join's inputs, co-partitioned)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from odradek.streams import operators as op
from odradek.streams.joins import How, StreamJoinNode, TableJoinNode
from odradek.streams.serdes import BYTES, JSON, Serde, Windowed, WindowedSerde
from odradek.streams.windowed import SessionAggregateNode, SuppressNode
from odradek.streams.windows import JoinWindows, SessionWindows, TimeWindows

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
class GlobalSpec:
    """A global table: every partition of topic, read by every instance into one store."""

    name: str
    topic: str
    key_serde: Serde[Any]
    value_serde: Serde[Any]


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
        self.globals: dict[str, GlobalSpec] = {}
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
        if name in self.stores or name in self.globals:
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

    def join(self, other: Table[K, V2] | GlobalTable[Any, V2] | Stream[K, V2],
             fn: Callable[[V, V2], A], name: str = "", value_serde: Serde[A] | None = None,
             left: bool = False, *, windows: JoinWindows | None = None,
             key_fn: Callable[[K, V], Any] | None = None) -> Stream[K, A]:
        """Joins on the key, with fn(this value, other value):
        - a Table: each record with the table's row for its key as the table stands then.
          The stream's and table's topics must have the same partition count (checked
          when the App starts); a changed key is repartitioned first through
          `<app>-<name>-join-repartition`.
        - a GlobalTable: the row for key_fn(key, value) (default: the key); every
          instance holds the whole table, so neither co-partitioning nor a repartition.
        - a Stream: inner join of the records of both streams whose timestamps fall in
          `windows` of each other; `name` names the two buffer stores. Both inputs are
          co-partitioned (repartitioned if their key changed)."""
        if isinstance(other, GlobalTable):
            node = op.JoinNode(other.store, other.key_serde, other.value_serde, fn, left,
                               key_fn or (lambda k, _v: k))
            return self._then(node, None, value_serde or JSON)
        if isinstance(other, Stream):
            if left:
                raise TopologyError("left stream-stream joins are not built (inner only)")
            return self._join_stream(other, fn, name, value_serde, windows)
        if self._key_changed and not name:
            raise TopologyError("the key changed before this join: give it a name for its "
                                "repartition topic")
        stream = self._repartitioned(f"{name}-join")
        self._topology.co_partition([*stream._topics, *other.topics])
        node = op.JoinNode(other.store, other.key_serde, other.value_serde, fn, left)
        return stream._then(node, None, value_serde or JSON)

    def left_join(self, table: Table[K, V2] | GlobalTable[Any, V2],
                  fn: Callable[[V, V2 | None], A], name: str = "",
                  value_serde: Serde[A] | None = None,
                  key_fn: Callable[[K, V], Any] | None = None) -> Stream[K, A]:
        return self.join(table, fn, name, value_serde, left=True, key_fn=key_fn)

    def _join_stream(self, other: Stream[K, V2], fn: Callable[[V, V2], A], name: str,
                     value_serde: Serde[A] | None, windows: JoinWindows | None
                     ) -> Stream[K, A]:
        if windows is None or not name:
            raise TopologyError("a stream-stream join needs windows=JoinWindows(...) and a "
                                "name (for its buffer stores)")
        this, that = self._repartitioned(f"{name}-left"), other._repartitioned(f"{name}-right")
        topology = self._topology
        topology.co_partition([*this._topics, *that._topics])
        left_store, right_store = f"{name}-left-buffer", f"{name}-right-buffer"
        for store, stream in ((left_store, this), (right_store, that)):
            topology.add_store(store, BYTES, BYTES, sorted(stream._topics)[0], lambda _k: None)
        out = op.Node()
        sides = ((this, left_store, right_store, that.value_serde, True),
                 (that, right_store, left_store, this.value_serde, False))
        for stream, mine, theirs, their_serde, is_left in sides:
            node = StreamJoinNode(mine, theirs, is_left, windows, fn, this.key_serde,
                                  stream.value_serde, their_serde)
            node.children.append(out)
            stream._node.children.append(node)
        return Stream(topology, out, this._topics | that._topics, this.key_serde,
                      value_serde or JSON, False)


Windows = TimeWindows | SessionWindows


class GroupedStream(Generic[K, V]):
    def __init__(self, stream: Stream[K, V], windows: Windows | None = None) -> None:
        self._stream, self._windows = stream, windows

    def windowed_by(self, windows: Windows) -> GroupedStream[K, V]:
        """Aggregates per window: TumblingWindows, HoppingWindows or SessionWindows, on
        the records' timestamps (event time), with their grace periods."""
        return GroupedStream(self._stream, windows)

    def aggregate(self, name: str, init: Callable[[], A], fn: Callable[[K, V, A], A],
                  value_serde: Serde[A] | None = None,
                  merge: Callable[[K, A, A], A] | None = None) -> Table[Any, A]:
        """A table of fn folded over each key's records (per window when windowed), kept
        in store `name` with changelog `<app>-<name>-changelog`. Session windows also need
        merge(key, earlier session's aggregate, later one's) for the sessions a record
        joins together."""
        return self._aggregate(name, init, fn, value_serde, merge)

    def _aggregate(self, name: str, init: Callable[[], Any] | None,
                   fn: Callable[[Any, Any, Any], Any], value_serde: Serde[Any] | None,
                   merge: Callable[[Any, Any, Any], Any] | None) -> Table[Any, Any]:
        stream = self._stream._repartitioned(name)
        topology, inner = stream._topology, stream.key_serde
        key_serde: Serde[Any] = inner
        windowed = WindowedSerde(inner)
        if self._windows is not None:
            key_serde = windowed

        def partition_key(key: Any) -> bytes | None:
            return inner.serialize(key.key if isinstance(key, Windowed) else key)

        topic = sorted(stream._topics)[0]
        vs = value_serde or JSON
        topology.add_store(name, key_serde, vs, topic, partition_key)
        node: op.Node
        if isinstance(self._windows, SessionWindows):
            if merge is None:
                raise TopologyError("an aggregate over session windows needs merge=")
            node = SessionAggregateNode(name, windowed, vs, init, fn, merge, self._windows)
        else:
            node = op.AggregateNode(name, key_serde, vs, init, fn, self._windows)
        stream._node.children.append(node)
        return Table(topology, node, name, stream._topics, key_serde, vs, self._windows)

    def count(self, name: str) -> Table[Any, int]:
        return self.aggregate(name, lambda: 0, lambda _k, _v, n: n + 1,
                              merge=lambda _k, a, b: a + b)

    def reduce(self, name: str, fn: Callable[[V, V], V], value_serde: Serde[V] | None = None
               ) -> Table[Any, V]:
        """A key's first value, then fn(aggregate, value) for each next one (sessions
        merge with fn(earlier, later))."""
        return self._aggregate(name, None, lambda _k, v, acc: fn(acc, v), value_serde,
                               lambda _k, a, b: fn(a, b))


class Table(Generic[K, V]):
    """A keyed, changing view: its store holds the latest value per key, and its stream
    of updates (to_stream) carries every change."""

    def __init__(self, topology: Topology, node: op.Node, store: str, topics: frozenset[str],
                 key_serde: Serde[Any], value_serde: Serde[Any],
                 windows: Windows | None = None) -> None:
        self._topology, self._node, self.store = topology, node, store
        self.topics, self.key_serde, self.value_serde = topics, key_serde, value_serde
        self.windows = windows

    def to_stream(self) -> Stream[K, V]:
        passthrough = op.Node()
        self._node.children.append(passthrough)
        return Stream(self._topology, passthrough, self.topics, self.key_serde,
                      self.value_serde, False)

    def to(self, topic: str, key_serde: Serde[K] | None = None,
           value_serde: Serde[V] | None = None) -> None:
        self.to_stream().to(topic, key_serde, value_serde)

    def join(self, other: Table[K, V2], fn: Callable[[V | None, V2 | None], A], name: str,
             value_serde: Serde[A] | None = None, how: How = "inner") -> Table[K, A]:
        """Table-table join on the key, kept in store `name`: the result holds
        fn(left, right) for the keys present in both tables (how="inner"), in this one
        ("left", right None when absent) or in either ("outer"). An update on either side
        recomputes its key; a key leaving the result is forwarded as None. The two tables'
        topics must be co-partitioned (checked when the App starts)."""
        topology = self._topology
        topology.co_partition([*self.topics, *other.topics])
        topics, vs = self.topics | other.topics, value_serde or JSON
        topology.add_store(name, self.key_serde, vs, sorted(topics)[0], self.key_serde.serialize)
        out = op.Node()
        sides = ((self, other, True), (other, self, False))
        for mine, theirs, is_left in sides:
            node = TableJoinNode(mine.store, theirs.store, name, is_left, fn, how,
                                 self.key_serde, theirs.value_serde, vs)
            node.children.append(out)
            mine._node.children.append(node)
        return Table(topology, out, name, topics, self.key_serde, vs)

    def left_join(self, other: Table[K, V2], fn: Callable[[V, V2 | None], A], name: str,
                  value_serde: Serde[A] | None = None) -> Table[K, A]:
        return self.join(other, fn, name, value_serde, "left")  # type: ignore[arg-type]

    def outer_join(self, other: Table[K, V2], fn: Callable[[V | None, V2 | None], A],
                   name: str, value_serde: Serde[A] | None = None) -> Table[K, A]:
        return self.join(other, fn, name, value_serde, "outer")

    def suppress(self) -> Table[K, V]:
        """Of a windowed table: each window's final value, forwarded once when the window
        closes (by stream time: end + grace, sessions end + gap + grace) instead of every
        update. The held updates live in store `<store>-suppress`; queries of the table
        still read the current aggregates."""
        if self.windows is None:
            raise TopologyError("suppress() needs a windowed table")
        buffer = f"{self.store}-suppress"
        self._topology.add_store(buffer, BYTES, BYTES, sorted(self.topics)[0], lambda _k: None)
        node = SuppressNode(buffer, self.key_serde, self.value_serde, self.windows)
        self._node.children.append(node)
        return Table(self._topology, node, self.store, self.topics, self.key_serde,
                     self.value_serde, self.windows)


class GlobalTable(Generic[K, V]):
    """A table every instance holds in full (all partitions of its topic, read by the
    instance outside the consumer group), for joins with any stream on any key."""

    def __init__(self, spec: GlobalSpec) -> None:
        self.store, self.key_serde, self.value_serde = spec.name, spec.key_serde, spec.value_serde
