"""Runs a topology in memory, without a broker: records piped in are processed by the
same tasks and operators as in the runtime, repartition outputs are fed back at once, and
sink outputs are collected per topic. For unit and property tests of applications."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from odradek.client.partitioner import partition_for_key
from odradek.streams.operators import Output
from odradek.streams.serdes import Serde
from odradek.streams.stores import KeyValueStore, MemoryStore
from odradek.streams.task import Task, TaskId
from odradek.streams.topology import Topology


class Driver:
    def __init__(self, topology: Topology, partitions: int = 1) -> None:
        self.topology, self.partitions = topology, partitions
        self.tasks: dict[TaskId, Task] = {}
        self.outputs: dict[str, list[Output]] = defaultdict(list)
        self.global_stores: dict[str, KeyValueStore] = {
            name: MemoryStore() for name in topology.globals}
        self._global_topics = {g.topic: g.name for g in topology.globals.values()}

    def _task(self, topic: str, partition: int) -> Task:
        task_id = (self.topology.group_of(topic), partition)
        if task_id not in self.tasks:
            self.tasks[task_id] = Task(self.topology, task_id, lambda _name: MemoryStore(),
                                       self.global_stores)
        return self.tasks[task_id]

    def _partition(self, key: bytes | None) -> int:
        return 0 if key is None else partition_for_key(key, self.partitions)

    def pipe_bytes(self, topic: str, key: bytes | None, value: bytes | None, ts: int) -> None:
        if topic in self._global_topics:
            if key is not None:
                store = self.global_stores[self._global_topics[topic]]
                store.delete(key) if value is None else store.put(key, value)
            return
        pending = [(topic, key, value, ts, self._partition(key))]
        while pending:
            topic, key, value, ts, partition = pending.pop(0)
            task = self._task(topic, partition)
            task.process(topic, key, value, ts)
            for out in task.take_outputs():
                self.outputs[out.topic].append(out)
                if out.topic in self.topology.repartitions:
                    pending.append((out.topic, out.key, out.value, out.timestamp,
                                    self._partition(out.key)))

    def pipe(self, topic: str, key: Any, value: Any, ts: int = 0) -> None:
        if topic in self._global_topics:
            spec = self.topology.globals[self._global_topics[topic]]
            key_serde, value_serde = spec.key_serde, spec.value_serde
        else:
            key_serde = self.topology.sources[topic].key_serde
            value_serde = self.topology.sources[topic].value_serde
        self.pipe_bytes(topic, key_serde.serialize(key), value_serde.serialize(value), ts)

    def read(self, topic: str, key_serde: Serde[Any], value_serde: Serde[Any]
             ) -> list[tuple[Any, Any]]:
        return [(key_serde.deserialize(o.key), value_serde.deserialize(o.value))
                for o in self.outputs[topic]]

    def store(self, name: str) -> dict[Any, Any]:
        """Every key and value of a store, over all tasks, decoded."""
        spec = self.topology.stores[name]
        out: dict[Any, Any] = {}
        for task in self.tasks.values():
            if name in task.stores:
                for k, v in task.stores[name].range():
                    out[spec.key_serde.deserialize(k)] = spec.value_serde.deserialize(v)
        return out
