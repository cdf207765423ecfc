"""App: the entry point. Declare streams and tables, then `await app.start()` (or
`async with app:`); query stores with `app.store(name)`."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from odradek.client import Admin
from odradek.client.connection import Cluster
from odradek.client.partitioner import partition_for_key
from odradek.streams import operators as op
from odradek.streams.runtime import Runtime, TaskMetrics, prepare_topics
from odradek.streams.serdes import BYTES, Serde
from odradek.streams.topology import (
    GlobalSpec,
    GlobalTable,
    StoreSpec,
    Stream,
    Table,
    Topology,
    TopologyError,
)

K = TypeVar("K")
V = TypeVar("V")


class NotLocalError(LookupError):
    """The key's partition is processed by another instance (or by none right now)."""


class App:
    def __init__(self, bootstrap: str, application_id: str, *,
                 state_dir: str | Path | None = None, replication_factor: int = 0,
                 max_poll_records: int = 1000) -> None:
        self.bootstrap, self.application_id = bootstrap, application_id
        self.topology = Topology(application_id)
        self.state_dir = Path(state_dir or Path(tempfile.gettempdir()) / "odradek-streams")
        self.replication_factor = replication_factor
        self.max_poll_records = max_poll_records
        self.runtime: Runtime | None = None
        self._partitions: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._cluster: Cluster | None = None

    # -- the topology ---------------------------------------------------------------------

    def stream(self, topic: str, key_serde: Serde[K] = BYTES,  # type: ignore[assignment]
               value_serde: Serde[V] = BYTES) -> Stream[K, V]:  # type: ignore[assignment]
        node = self.topology.source(topic, key_serde, value_serde)
        return Stream(self.topology, node, frozenset([topic]), key_serde, value_serde, False)

    def table(self, topic: str, key_serde: Serde[K] = BYTES,  # type: ignore[assignment]
              value_serde: Serde[V] = BYTES,  # type: ignore[assignment]
              name: str | None = None) -> Table[K, V]:
        """A (compacted) topic read into store `name` (default: the topic's name), the
        latest value per key; a None value deletes the key."""
        source = self.topology.source(topic, key_serde, value_serde)
        store = self.topology.add_store(name or topic, key_serde, value_serde, topic,
                                        key_serde.serialize)
        node = op.TableSourceNode(store, key_serde, value_serde)
        source.children.append(node)
        return Table(self.topology, node, store, frozenset([topic]), key_serde, value_serde)

    def global_table(self, topic: str, key_serde: Serde[K] = BYTES,  # type: ignore[assignment]
                     value_serde: Serde[V] = BYTES,  # type: ignore[assignment]
                     name: str | None = None) -> GlobalTable[K, V]:
        """Every partition of topic read into store `name` (default: the topic's name) on
        every instance; it is read to its end before processing starts and kept up to
        date while it runs. The topic itself is the changelog (rebuilt in full on start)."""
        store = name or topic
        if topic in self.topology.sources or store in self.topology.stores or any(
                g.topic == topic or g.name == store for g in self.topology.globals.values()):
            raise TopologyError(f"topic {topic!r} or store {store!r} is used already")
        spec = self.topology.globals[store] = GlobalSpec(store, topic, key_serde, value_serde)
        return GlobalTable(spec)

    # -- running --------------------------------------------------------------------------

    async def start(self) -> None:
        """Makes the app's topics (checking co-partitioning), then processes in a
        background task until stop()."""
        if self._task is not None:
            raise RuntimeError("the app is running")
        self._cluster = Cluster(self.bootstrap)
        async with Admin(cluster=self._cluster) as admin:
            self._partitions = await prepare_topics(admin, self.topology,
                                                    self.replication_factor)
        self.runtime = Runtime(self.topology, self._cluster, self.state_dir,
                               self.max_poll_records)
        self._task = asyncio.create_task(self.runtime.run())

    async def stop(self) -> None:
        if self._task is None or self.runtime is None:
            return
        self.runtime.stop()
        try:
            await self._task
        finally:
            self._task = None
            assert self._cluster is not None
            await self._cluster.close()

    async def wait(self) -> None:
        """Until the processing loop ends (it raises what stopped it)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def metrics(self) -> list[TaskMetrics]:
        """Per task of this instance: records in and out, late records dropped, stream
        time, lag of its input partitions and the keys in each store."""
        return [] if self.runtime is None else await self.runtime.task_metrics()

    # -- interactive queries ----------------------------------------------------------------

    def store(self, name: str) -> StoreView[Any, Any]:
        if name in self.topology.globals:
            g = self.topology.globals[name]
            return StoreView(self, StoreSpec(name, g.topic, g.key_serde, g.value_serde, g.topic,
                                             lambda _k: None), is_global=True)
        if name not in self.topology.stores:
            raise KeyError(f"no store named {name!r}")
        return StoreView(self, self.topology.stores[name])


class StoreView(Generic[K, V]):
    """Reads one store of the tasks on this instance (read-only)."""

    def __init__(self, app: App, spec: StoreSpec, is_global: bool = False) -> None:
        self._app, self._spec, self._global = app, spec, is_global

    def _stores(self) -> dict[int, Any]:
        runtime = self._app.runtime
        if runtime is None:
            return {}
        if self._global:  # the whole table, as if one partition
            found = runtime.global_stores.get(self._spec.name)
            return {} if found is None else {0: found}
        return {tid[1]: t.stores[self._spec.name] for tid, t in runtime.tasks.items()
                if self._spec.name in t.stores}

    def get(self, key: K) -> V | None:
        """The key's value; NotLocalError when another instance holds its partition."""
        partition = 0
        pk = self._spec.partition_key(key)
        if pk is not None:
            group = self._app.topology.group_of(self._spec.topic)
            partition = partition_for_key(pk, self._app._partitions[group])
        store = self._stores().get(partition)
        if store is None:
            raise NotLocalError(f"partition {partition} of store {self._spec.name!r} "
                                "is not on this instance")
        kb = self._spec.key_serde.serialize(key)
        value = None if kb is None else store.get(kb)
        return self._spec.value_serde.deserialize(value)

    def range(self, lo: K | None = None, hi: K | None = None) -> Iterator[tuple[K, V]]:
        """Local keys with lo <= key < hi in the order of their bytes."""
        lo_b = None if lo is None else self._spec.key_serde.serialize(lo)
        hi_b = None if hi is None else self._spec.key_serde.serialize(hi)
        pairs = sorted(p for s in self._stores().values() for p in s.range(lo_b, hi_b))
        for k, v in pairs:
            yield (self._spec.key_serde.deserialize(k),  # type: ignore[misc]
                   self._spec.value_serde.deserialize(v))

    def all(self) -> dict[K, V]:
        return dict(self.range())
