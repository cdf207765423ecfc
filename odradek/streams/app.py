"""App: the entry point. Declare streams and tables, then `await app.start()` (or
`async with app:`); query stores with `app.store(name)`."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc

from odradek.client import Admin
from odradek.client.auth import ScramLogin
from odradek.client.connection import Cluster
from odradek.client.partitioner import partition_for_key
from odradek.security.tls import ClientTLS, ServerTLS
from odradek.streams import operators as op
from odradek.streams.metrics import MetricsServer
from odradek.streams.query import QueryClient, QueryServer
from odradek.streams.registry import InstanceInfo, owners
from odradek.streams.runtime import Runtime, TaskMetrics, prepare_topics
from odradek.streams.serdes import BYTES, Serde
from odradek.streams.stores import KeyValueStore
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
    """query_address (host:port, port 0 for any free one): serve this instance's stores
    to the other instances over gRPC and route `query`/`query_range` to them.
    standby_replicas: how many other instances keep a warm copy of each task's stores.
    instance_id: this instance's name in the registry and the consumer group (default:
    random). metrics_port (0 for any free one; `metrics_port` holds it once started):
    serve Prometheus metrics of the tasks at http://metrics_host:port/metrics.
    query_tls: the query server's certificate, key and CA (client_auth "required": mutual
    TLS); this instance presents the same certificate when it asks the others.
    tls, login: how every connection to the brokers speaks TLS and logs in (SCRAM), as the
    client's Cluster takes them."""

    def __init__(self, bootstrap: str, application_id: str, *,
                 state_dir: str | Path | None = None, replication_factor: int = 0,
                 max_poll_records: int = 1000, query_address: str | None = None,
                 standby_replicas: int = 0, instance_id: str | None = None,
                 metrics_port: int | None = None, metrics_host: str = "0.0.0.0",
                 query_tls: ServerTLS | None = None, tls: ClientTLS | None = None,
                 login: ScramLogin | None = None) -> None:
        self.bootstrap, self.application_id = bootstrap, application_id
        self.topology = Topology(application_id)
        self.state_dir = Path(state_dir or Path(tempfile.gettempdir()) / "odradek-streams")
        self.replication_factor = replication_factor
        self.max_poll_records = max_poll_records
        self.query_address, self.standby_replicas = query_address, standby_replicas
        self.instance_id = instance_id
        self.runtime: Runtime | None = None
        self._partitions: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._cluster: Cluster | None = None
        self._server: QueryServer | None = None
        self.query_tls, self.tls, self.login = query_tls, tls, login
        self._queries = QueryClient(None if query_tls is None else query_tls.client())
        self.metrics_port, self.metrics_host = metrics_port, metrics_host
        self._metrics_server: MetricsServer | None = None

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
        self._cluster = Cluster(self.bootstrap, tls=self.tls, login=self.login)
        async with Admin(cluster=self._cluster) as admin:
            self._partitions = await prepare_topics(admin, self.topology,
                                                    self.replication_factor)
        endpoint = ""
        if self.query_address is not None:
            self._server = QueryServer(self.application_id, self.query_address,
                                       self.local_stores, self.route_get, self.query_tls)
            await self._server.start()
            endpoint = self._server.endpoint
        self.runtime = Runtime(self.topology, self._cluster, self.state_dir,
                               self.max_poll_records, partitions=self._partitions,
                               instance_id=self.instance_id, endpoint=endpoint,
                               standby_replicas=self.standby_replicas)
        self._task = asyncio.create_task(self.runtime.run())
        if self.metrics_port is not None:
            self._metrics_server = MetricsServer(self.application_id, lambda: self.runtime,
                                                 self.metrics_host, self.metrics_port)
            self._metrics_server.start()
            self.metrics_port = self._metrics_server.port

    async def stop(self) -> None:
        if self._task is None or self.runtime is None:
            return
        if self._metrics_server is not None:  # a scrape needs the running consumer
            self._metrics_server.stop()
            self._metrics_server = None
        self.runtime.stop()
        try:
            await self._task
        finally:
            self._task = None
            if self._server is not None:
                await self._server.stop()
                self._server = None
            await self._queries.close()
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

    def local_stores(self, name: str) -> dict[int, KeyValueStore] | None:
        """Partition -> store of the tasks running here (a global store as partition 0);
        None when the application has no store of that name."""
        if name not in self.topology.stores and name not in self.topology.globals:
            return None
        runtime = self.runtime
        if runtime is None:
            return {}
        if name in self.topology.globals:  # the whole table, as if one partition
            found = runtime.global_stores.get(name)
            return {} if found is None else {0: found}
        return {tid[1]: t.stores[name] for tid, t in runtime.tasks.items() if name in t.stores}

    def instances(self) -> dict[str, InstanceInfo]:
        """The application's instances as this one last read them from the registry."""
        return {} if self.runtime is None else dict(self.runtime.instances)

    async def query(self, name: str, key: Any) -> Any:
        """The key's value in store `name`, from this instance when it runs the key's task,
        else from the instance that does (over gRPC, found in the registry).
        NotLocalError when no instance is known to run it or the one asked no longer does
        (a hand-over in flight: ask again)."""
        view = self.store(name)
        if view.is_global:
            return view.get(key)
        partition, kb = view.locate(key)
        if kb is None:
            return None
        return view.spec.value_serde.deserialize(await self._get_bytes(view, partition, kb))

    async def route_get(self, name: str, kb: bytes) -> bytes | None:
        """query() on the key's bytes, for a caller that knows no serdes or partitions
        (the query server, asked with partition -1)."""
        view = self.store(name)
        if view.is_global:
            store = (self.local_stores(name) or {}).get(0)
            return None if store is None else store.get(kb)
        partition, _ = view.locate(view.spec.key_serde.deserialize(kb))
        return await self._get_bytes(view, partition, kb)

    async def _get_bytes(self, view: StoreView[Any, Any], partition: int, kb: bytes
                         ) -> bytes | None:
        name = view.spec.name
        local = (self.local_stores(name) or {}).get(partition)
        if local is not None:
            return local.get(kb)
        runtime = self.runtime
        owner = None if runtime is None else owners(runtime.instances).get(
            (self.topology.group_of(view.spec.topic), partition))
        if owner is None or not owner.endpoint or (
                runtime is not None and owner.instance_id == runtime.instance_id):
            raise NotLocalError(f"no other instance is known to run partition {partition} "
                                f"of store {name!r}")
        try:
            return await self._queries.get(owner.endpoint, self.application_id, name,
                                           partition, kb)
        except grpc.aio.AioRpcError as exc:
            raise NotLocalError(f"instance {owner.instance_id} at {owner.endpoint} did not "
                                f"answer for partition {partition} of {name!r}: "
                                f"{exc.code().name} {exc.details()}") from exc

    async def query_range(self, name: str, lo: Any = None, hi: Any = None
                          ) -> list[tuple[Any, Any]]:
        """Keys lo <= key < hi of store `name` over every instance (this one's tasks and
        each other live instance's, over gRPC), in the order of the keys' bytes."""
        view = self.store(name)
        if view.is_global:
            return list(view.range(lo, hi))
        serde = view.spec.key_serde
        lo_b = None if lo is None else serde.serialize(lo)
        hi_b = None if hi is None else serde.serialize(hi)
        pairs = dict(p for s in (self.local_stores(name) or {}).values()
                     for p in s.range(lo_b, hi_b))
        me = None if self.runtime is None else self.runtime.instance_id
        others = [i for i in self.instances().values()
                  if i.fresh() and i.endpoint and i.instance_id != me and i.active]
        answers = await asyncio.gather(*(self._queries.range(
            i.endpoint, self.application_id, name, lo_b, hi_b) for i in others),
            return_exceptions=True)
        for info, answer in zip(others, answers, strict=True):
            if isinstance(answer, BaseException):
                raise NotLocalError(f"instance {info.instance_id} at {info.endpoint} did "
                                    f"not answer a range of {name!r}: {answer}")
            pairs.update(answer)
        return [(serde.deserialize(k), view.spec.value_serde.deserialize(v))
                for k, v in sorted(pairs.items())]


class StoreView(Generic[K, V]):
    """Reads one store of the tasks on this instance (read-only)."""

    def __init__(self, app: App, spec: StoreSpec, is_global: bool = False) -> None:
        self._app, self.spec, self.is_global = app, spec, is_global

    def _stores(self) -> dict[int, KeyValueStore]:
        return self._app.local_stores(self.spec.name) or {}

    def locate(self, key: K) -> tuple[int, bytes | None]:
        """The partition of the task that holds key, and the key's bytes."""
        partition = 0
        pk = self.spec.partition_key(key)
        if pk is not None:
            group = self._app.topology.group_of(self.spec.topic)
            partition = partition_for_key(pk, self._app._partitions[group])
        return partition, self.spec.key_serde.serialize(key)

    def get(self, key: K) -> V | None:
        """The key's value; NotLocalError when another instance holds its partition."""
        partition, kb = self.locate(key)
        store = self._stores().get(partition)
        if store is None:
            raise NotLocalError(f"partition {partition} of store {self.spec.name!r} "
                                "is not on this instance")
        value = None if kb is None else store.get(kb)
        return self.spec.value_serde.deserialize(value)

    def range(self, lo: K | None = None, hi: K | None = None) -> Iterator[tuple[K, V]]:
        """Local keys with lo <= key < hi in the order of their bytes."""
        lo_b = None if lo is None else self.spec.key_serde.serialize(lo)
        hi_b = None if hi is None else self.spec.key_serde.serialize(hi)
        pairs = sorted(p for s in self._stores().values() for p in s.range(lo_b, hi_b))
        for k, v in pairs:
            yield (self.spec.key_serde.deserialize(k),  # type: ignore[misc]
                   self.spec.value_serde.deserialize(v))

    def all(self) -> dict[K, V]:
        return dict(self.range())
