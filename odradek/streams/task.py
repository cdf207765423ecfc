"""A task: partition p of one task group's topics, its operators and its stores. Pure: the
caller feeds records and changelog entries and takes the outputs."""

from __future__ import annotations

import struct
from collections.abc import Callable

from odradek.streams.operators import Context, Node, Output
from odradek.streams.stores import KeyValueStore
from odradek.streams.topology import Topology
from odradek.streams.windowed import SuppressNode

TaskId = tuple[int, int]  # (task group, partition)

SOURCE_HEADER = "odradek.streams.source"
"""On every changelog record: the input record (topic, offset; the partition is the
task's) whose processing wrote it. After a crash, the changelog can hold writes of input
records whose offsets were never committed (acknowledged, but the crash came before the
commit); a restore skips them, so that the state is the one of the committed input and
processing those records again gives what a failure-free run gave."""


def encode_source(topic: str, offset: int) -> bytes:
    return struct.pack(">q", offset) + topic.encode()


def decode_source(data: bytes) -> tuple[str, int]:
    return data[8:].decode(), int(struct.unpack(">q", data[:8])[0])


class Task:
    def __init__(self, topology: Topology, task_id: TaskId,
                 open_store: Callable[[str], KeyValueStore],
                 global_stores: dict[str, KeyValueStore] | None = None) -> None:
        self.id = task_id
        group, partition = task_id
        self.topics = topology.groups()[group]
        self._sources = {t: topology.sources[t] for t in self.topics}
        groups = {t: group for t in self.topics}
        self.store_names = [s.name for s in topology.stores.values() if s.topic in groups]
        self._own = {name: open_store(name) for name in self.store_names}
        # Global stores are shared by every task of the instance: read here, written and
        # closed by their own reader, never through a task's changelogs.
        self.context = Context(partition, {**(global_stores or {}), **self._own},
                               {n: topology.stores[n].changelog for n in self.store_names})
        self._timed = _timed_nodes(list(self._sources.values()))
        self.records_in = 0  # input records processed
        self.records_out = 0  # outputs handed over, changelog records included

    @property
    def stores(self) -> dict[str, KeyValueStore]:
        return self._own

    def process(self, topic: str, key: bytes | None, value: bytes | None, ts: int,
                offset: int | None = None) -> None:
        """offset: the record's in topic, for the source header of the changelog records
        it causes (None: none, as in the in-memory driver)."""
        self.records_in += 1
        self.context.source = None if offset is None else encode_source(topic, offset)
        before = self.context.stream_time
        self._sources[topic].receive(self.context, key, value, ts)
        if self.context.stream_time > before:
            # Windows may have closed without a record reaching their suppression.
            for node in self._timed:
                node.on_time(self.context)

    def restore(self, store: str, key: bytes | None, value: bytes | None) -> None:
        """Applies one changelog record (no outputs: it is already in the changelog)."""
        if key is None:
            return
        if value is None:
            self.stores[store].delete(key)
        else:
            self.stores[store].put(key, value)

    def take_outputs(self) -> list[Output]:
        outputs, self.context.outputs = self.context.outputs, []
        self.records_out += len(outputs)
        return outputs

    def commit_stores(self) -> None:
        for store in self.stores.values():
            store.commit()

    def close(self) -> None:
        for store in self.stores.values():
            store.close()


def _timed_nodes(roots: list[Node]) -> list[SuppressNode]:
    seen: set[int] = set()
    found: list[SuppressNode] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SuppressNode):
            found.append(node)
        stack.extend(node.children)
    return found
