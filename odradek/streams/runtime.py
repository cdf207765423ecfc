"""Runs a topology against a cluster: topics made, tasks made and restored as the
consumer group assigns partitions, records processed in polled batches, and input offsets
committed only after every output and changelog record of the batch is acknowledged
(at-least-once)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from odradek.client import (
    Admin,
    Consumer,
    ConsumerRecord,
    OdradekError,
    Producer,
    RecordFuture,
    TopicAlreadyExistsError,
    TopicPartition,
)
from odradek.client.connection import Cluster
from odradek.streams.registry import (
    PUBLISH_INTERVAL_S,
    InstanceInfo,
    registry_topic,
    standby_tasks,
    task_name,
)
from odradek.streams.standby import Standbys, read_checkpoint, write_checkpoint
from odradek.streams.stores import KeyValueStore, LmdbStore
from odradek.streams.task import SOURCE_HEADER, Task, TaskId, decode_source
from odradek.streams.topology import Topology, TopologyError

log = logging.getLogger("odradek.streams")

RESTORE_LOG_INTERVAL_S = 2.0


async def prepare_topics(admin: Admin, topology: Topology, replication_factor: int
                         ) -> dict[int, int]:
    """Makes repartition, changelog and missing output topics and checks co-partitioning;
    returns the partition count of each task group."""
    counts: dict[str, int] = {}
    for topic in topology.sources:
        if topic in topology.repartitions:
            upstream = topology.repartitions[topic].upstream
            n = max(counts[t] for t in upstream)
            await _ensure(admin, topic, n, replication_factor, {})
            counts[topic] = n
        else:
            counts[topic] = len((await admin.describe_topic(topic)).partitions)
    per_group: dict[int, int] = {}
    for i, group in enumerate(topology.groups()):
        found = {t: counts[t] for t in group}
        if len(set(found.values())) > 1:
            names = ", ".join(f"{t!r} has {n}" for t, n in found.items())
            raise TopologyError(f"topics joined must be co-partitioned (the same partition "
                                f"count), but {names} partitions")
        per_group[i] = counts[group[0]]
    for topic, upstream in topology.sinks.items():
        if topic not in topology.repartitions:
            await _ensure(admin, topic, max(counts[t] for t in upstream), replication_factor, {})
    for spec in topology.stores.values():
        await _ensure(admin, spec.changelog, per_group[topology.group_of(spec.topic)],
                      replication_factor, {"cleanup.policy": "compact"})
    await _ensure(admin, registry_topic(topology.application_id), 1, replication_factor,
                  {"cleanup.policy": "compact"})
    return per_group


async def _ensure(admin: Admin, topic: str, partitions: int, rf: int,
                  configs: dict[str, str]) -> None:
    try:
        await admin.create_topic(topic, partitions, rf, configs)
    except TopicAlreadyExistsError:
        pass  # made by an earlier run or another instance


@dataclass(frozen=True)
class TaskMetrics:
    """One task of this instance, now."""

    task: TaskId
    partitions: list[TopicPartition]
    records_in: int
    records_out: int  # outputs and changelog records sent
    dropped_late: int
    stream_time: int
    lag: int  # records of its partitions not yet polled: end offset - position
    store_keys: dict[str, int]
    restored: int  # changelog records replayed into its stores when it opened here


@dataclass(frozen=True)
class RestoreProgress:
    """A store being restored now: changelog offsets from start to end, at position."""

    task: TaskId
    store: str
    start: int
    position: int
    end: int


class Runtime:
    def __init__(self, topology: Topology, cluster: Cluster, state_dir: Path,
                 max_poll_records: int = 1000, *, partitions: dict[int, int] | None = None,
                 instance_id: str | None = None, endpoint: str = "",
                 standby_replicas: int = 0) -> None:
        self.topology, self.cluster, self.state_dir = topology, cluster, state_dir
        self.tasks: dict[TaskId, Task] = {}
        self.restored = 0  # changelog records applied by restores, for tests and logs
        self.committed = 0  # input records whose offsets this instance committed
        self.restoring: dict[tuple[TaskId, str], RestoreProgress] = {}
        self.restore_seconds = 0.0  # spent replaying changelogs, for benchmarks and logs
        self._restored_into: dict[TaskId, int] = {}
        self._owned: dict[TaskId, set[TopicPartition]] = {}
        self._changelog_end: dict[tuple[TaskId, str], int] = {}
        app = topology.application_id
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self.endpoint = endpoint
        # every task of the application (from the partition counts), for standby placement
        self._all_tasks = [(g, p) for g, n in sorted((partitions or {}).items())
                           for p in range(n)]
        self.standby_replicas = standby_replicas
        self.instances: dict[str, InstanceInfo] = {}  # the registry as last read
        self.producer = Producer(cluster=cluster, linger_ms=2)
        # range: per topic, partition p of every subscribed topic goes to the same member
        # (equal partition counts, same subscriptions), which keeps join inputs together.
        self.consumer = Consumer(cluster=cluster, group_id=app, enable_auto_commit=False,
                                 auto_offset_reset="earliest", assignment_strategy="range",
                                 max_poll_records=max_poll_records, session_timeout_ms=6000,
                                 client_id=self.instance_id)
        self.standbys = Standbys(cluster, self._task_dir, self._changelogs_of)
        self._registry_reader = Consumer(cluster=cluster, auto_offset_reset="earliest")
        self._registry_loop: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()  # the assignment changed: publish now
        self._stopping = asyncio.Event()
        self.global_stores: dict[str, KeyValueStore] = {}
        # group_of walks the union-find and the groups per call: too slow per record
        self._group_of = {t: topology.group_of(t) for t in topology.sources}
        self._global_reader: Consumer | None = None
        self._global_follower: asyncio.Task[None] | None = None

    def _task_dir(self, task_id: TaskId) -> Path:
        return self.state_dir / self.topology.application_id / f"{task_id[0]}_{task_id[1]}"

    def _changelogs_of(self, task_id: TaskId) -> dict[str, str]:
        group = self.topology.groups()[task_id[0]]
        return {s.name: s.changelog for s in self.topology.stores.values()
                if s.topic in group}

    async def run(self) -> None:
        clean = False
        group_of = self._group_of
        try:
            if self.topology.globals:
                await self._load_globals()
            self._registry_reader.assign([(registry_topic(self.topology.application_id), 0)])
            self.standbys.start()
            self._registry_loop = asyncio.create_task(self._keep_registry())
            self.consumer.subscribe(list(self.topology.sources), on_assigned=self._assigned,
                                    on_revoked=self._revoked)
            while not self._stopping.is_set():
                for helper in (self._global_follower, self._registry_loop):
                    if helper is not None and helper.done():
                        helper.result()  # a helper that stopped (a global table's reader,
                        # the registry's): stop too, with its error
                failed = self.standbys.failed()
                if failed is not None:
                    raise failed
                records = await self.consumer.poll(100)
                if not records:
                    continue
                offsets: dict[tuple[str, int], int] = {}
                for r in records:
                    task = self.tasks[(group_of[r.topic], r.partition)]
                    task.process(r.topic, r.key, r.value, r.timestamp, r.offset)
                    offsets[(r.topic, r.partition)] = r.offset + 1
                await self._flush_outputs()
                await self.consumer.commit(offsets)
                self.committed += len(records)
            clean = True
        finally:
            await self._close_all(clean)

    def stop(self) -> None:
        self._stopping.set()

    async def task_metrics(self) -> list[TaskMetrics]:
        owned = {task_id: sorted(tps) for task_id, tps in self._owned.items()
                 if task_id in self.tasks}
        all_tps = [tp for tps in owned.values() for tp in tps]
        ends = await self.consumer.end_offsets(all_tps) if all_tps else {}
        out = []
        for task_id, tps in sorted(owned.items()):
            task = self.tasks.get(task_id)
            if task is None:  # revoked while the end offsets were asked for
                continue
            lag = 0
            for tp in tps:
                with contextlib.suppress(ValueError):  # revoked meanwhile: no position
                    lag += max(0, ends[tp] - await self.consumer.position(tp))
            out.append(TaskMetrics(task_id, tps, task.records_in, task.records_out,
                                   task.context.dropped_late, task.context.stream_time, lag,
                                   {name: store.size() for name, store in task.stores.items()},
                                   self._restored_into.get(task_id, 0)))
        return out

    # -- the registry and standbys ---------------------------------------------------------

    async def _keep_registry(self) -> None:
        """Follows the registry topic, publishes this instance's entry when its tasks
        change and every PUBLISH_INTERVAL_S (lags, liveness), and places standbys."""
        next_publish = 0.0
        topic = registry_topic(self.topology.application_id)
        while True:
            for r in await self._registry_reader.poll(100):
                if r.key is None:
                    continue
                who = r.key.decode()
                if r.value is None:
                    self.instances.pop(who, None)
                else:
                    self.instances[who] = InstanceInfo.decode(who, r.value)
            if self._changed.is_set() or time.monotonic() >= next_publish:
                self._changed.clear()
                self._place_standbys()
                next_publish = time.monotonic() + PUBLISH_INTERVAL_S
                try:
                    info = await self.describe_self()
                    self.instances[self.instance_id] = info
                    await (await self.producer.send(topic, info.encode(),
                                                    self.instance_id.encode()))
                except OdradekError as exc:
                    # Processing goes on without a fresh entry (queries and describe may
                    # be stale for a while); the next interval tries again.
                    log.warning("could not publish instance %s to %s: %s",
                                self.instance_id, topic, exc)

    async def describe_self(self) -> InstanceInfo:
        active = {task_name(m.task): m.lag for m in await self.task_metrics()}
        for task_id, tps in self._owned.items():  # opening (restoring) tasks, lag unknown
            if tps:
                active.setdefault(task_name(task_id), -1)
        standby = {task_name(t): lag for t, lag in (await self.standbys.lags()).items()}
        return InstanceInfo(self.instance_id, self.endpoint, active, standby,
                            int(time.time() * 1000))

    def _place_standbys(self) -> None:
        if self.standby_replicas <= 0:
            return
        stateful = [t for t in self._all_tasks if self._changelogs_of(t)]
        # this instance's own claims as they are now, not as last read back
        me = InstanceInfo(self.instance_id, self.endpoint,
                          {task_name(t): 0 for t, tps in self._owned.items() if tps},
                          {}, int(time.time() * 1000))
        view = {**self.instances, self.instance_id: me}
        wanted = standby_tasks(self.instance_id, view, stateful, self.standby_replicas)
        wanted -= {t for t, tps in self._owned.items() if tps}  # active here (or opening)
        for task in set(self.standbys.copies) - wanted:
            self.standbys.release(task)
        for task in wanted - set(self.standbys.copies):
            self.standbys.add(task)

    async def _flush_outputs(self) -> None:
        """Sends every task's outputs and waits for all acknowledgements: only then may the
        inputs that caused them be committed. A failed send raises, so nothing is."""
        sent: list[tuple[TaskId, str | None, RecordFuture]] = []
        for task in self.tasks.values():
            changelogs = {c: s for s, c in task.context.changelogs.items()}
            for out in task.take_outputs():
                fut = await self.producer.send(
                    out.topic, out.value, out.key, out.partition,
                    headers=() if out.source is None else ((SOURCE_HEADER, out.source),),
                    timestamp_ms=out.timestamp)
                sent.append((task.id, changelogs.get(out.topic), fut))
        for task_id, store, fut in sent:
            meta = await fut
            if store is not None:
                key = (task_id, store)
                self._changelog_end[key] = max(self._changelog_end.get(key, 0),
                                               meta.offset + 1)
        for task in self.tasks.values():
            task.commit_stores()

    async def _assigned(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            task_id = (self._group_of[tp.topic], tp.partition)
            self._owned.setdefault(task_id, set()).add(tp)
            if task_id not in self.tasks:
                self.tasks[task_id] = await self._open(task_id)
        self._changed.set()

    async def _revoked(self, tps: list[TopicPartition]) -> None:
        # Each batch is flushed and committed before the next poll, and revocations run
        # inside poll: nothing of these partitions is pending now.
        for tp in tps:
            task_id = (self._group_of[tp.topic], tp.partition)
            owned = self._owned.get(task_id, set())
            owned.discard(tp)
            if not owned and task_id in self.tasks:
                self._close(self.tasks.pop(task_id))
        self._changed.set()

    async def _open(self, task_id: TaskId) -> Task:
        """A task with its stores brought up to date from their changelogs. A store closed
        cleanly left a checkpoint (its changelog offsets) and replays only what follows;
        otherwise it may hold writes never acknowledged, so it is wiped and rebuilt."""
        base = self._task_dir(task_id)
        # A standby copy of it here: closed with a checkpoint, then opened as any task
        # closed cleanly, so only the changelogs' tail is replayed.
        self.standbys.release(task_id)
        found = read_checkpoint(base)
        checkpoint: dict[str, int] = found or {}
        if found is None and base.exists():
            LmdbStore.wipe(base)

        def open_store(name: str) -> KeyValueStore:
            return LmdbStore(base / name)

        task = Task(self.topology, task_id, open_store, self.global_stores)
        before = self.restored
        committed = {tp.topic: offset for tp, offset in (await self.consumer.committed(
            [(t, task_id[1]) for t in task.topics])).items()} if task.store_names else {}
        for name in task.store_names:
            start = checkpoint.get(name, 0)
            self._changelog_end[(task_id, name)] = start
            await self._restore(task, name, start, committed)
        self._restored_into[task_id] = self.restored - before
        return task

    async def _restore(self, task: Task, store: str, start: int,
                       committed: dict[str, int]) -> None:
        """Replays changelog records from start, but not those written for input records
        at or after the committed offsets (a crashed owner's last, uncommitted batch):
        they are processed again, and their effects must not be there twice."""
        tp = (self.topology.stores[store].changelog, task.id[1])
        async with Consumer(cluster=self.cluster, auto_offset_reset="earliest") as reader:
            reader.assign([tp])
            end = (await reader.end_offsets([tp]))[TopicPartition(*tp)]
            if start >= end:
                return
            reader.seek(tp, start)
            count = skipped = 0
            began = time.monotonic()
            next_log = began + RESTORE_LOG_INTERVAL_S
            key = (task.id, store)
            self.restoring[key] = RestoreProgress(task.id, store, start, start, end)
            try:
                # Offsets have gaps (control batches): the position says when it is done.
                while (position := await reader.position(tp)) < end:
                    self.restoring[key] = RestoreProgress(task.id, store, start, position, end)
                    if time.monotonic() >= next_log:
                        next_log += RESTORE_LOG_INTERVAL_S
                        log.info("restoring store %s of task %s: %d%% (offset %d of %d-%d, "
                                 "%d records)", store, task.id,
                                 100 * (position - start) // (end - start), position, start,
                                 end, count)
                    for r in await reader.poll(500):
                        if r.offset >= end:  # past what the checkpoint will say it holds
                            continue
                        if _uncommitted(r.headers, committed):
                            skipped += 1
                            continue
                        task.restore(store, r.key, r.value)
                        count += 1
            finally:
                del self.restoring[key]
            task.commit_stores()
            self.restored += count
            self.restore_seconds += time.monotonic() - began
            self._changelog_end[(task.id, store)] = end
            log.info("restored store %s of task %s: %d records from %s offsets %d-%d in "
                     "%.2f s (%d skipped: written for input not committed)", store, task.id,
                     count, tp[0], start, end, time.monotonic() - began, skipped)

    def _close(self, task: Task, clean: bool = True) -> None:
        task.close()
        if not clean:  # the stores may hold writes never acknowledged: no checkpoint
            return
        write_checkpoint(self._task_dir(task.id), {
            name: self._changelog_end.get((task.id, name), 0) for name in task.store_names})

    async def _close_all(self, clean: bool) -> None:
        # Taken away first: the consumer's close calls on_revoked, which would close them
        # cleanly (with a checkpoint) even when this close is not clean.
        tasks, self.tasks = list(self.tasks.values()), {}
        try:
            if self._registry_loop is not None:
                self._registry_loop.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    # its failure, if any, was raised by run() already
                    await self._registry_loop
            await self.consumer.close()  # auto commit is off: this commits nothing
        finally:
            for task in tasks:
                self._close(task, clean)
            await self.standbys.close()
            try:  # gone from the registry at once, not only once stale
                await (await self.producer.send(registry_topic(self.topology.application_id),
                                                None, self.instance_id.encode()))
            except Exception:  # stopping anyway; the entry goes stale
                log.warning("could not remove instance %s from the registry", self.instance_id)
            await self.producer.close()
            await self._registry_reader.close()
            await self._close_globals()

    async def _load_globals(self) -> None:
        """Reads every global table's topic to the end it has now before any task runs
        (a join must not miss rows written before the app started), then follows it."""
        by_topic = {g.topic: g.name for g in self.topology.globals.values()}
        for name in by_topic.values():
            path = self.state_dir / self.topology.application_id / "global" / name
            LmdbStore.wipe(path)  # no checkpoint yet: the topic is read again in full
            self.global_stores[name] = LmdbStore(path)
        reader = self._global_reader = Consumer(cluster=self.cluster,
                                                auto_offset_reset="earliest")
        tps = [tp for topic in by_topic for tp in await reader.partitions_for(topic)]
        reader.assign(tps)
        ends = await reader.end_offsets(tps)
        count = 0
        while any([await reader.position(tp) < ends[TopicPartition(*tp)] for tp in tps]):
            count += self._apply_global(by_topic, await reader.poll(500))
        log.info("loaded global tables %s: %d records", sorted(by_topic.values()), count)
        self._global_follower = asyncio.create_task(self._follow_globals(by_topic))

    def _apply_global(self, by_topic: dict[str, str], records: list[ConsumerRecord]) -> int:
        for r in records:
            if r.key is None:
                continue
            store = self.global_stores[by_topic[r.topic]]
            if r.value is None:
                store.delete(r.key)
            else:
                store.put(r.key, r.value)
        for store in self.global_stores.values():
            store.commit()
        return len(records)

    async def _follow_globals(self, by_topic: dict[str, str]) -> None:
        assert self._global_reader is not None
        while True:
            self._apply_global(by_topic, await self._global_reader.poll(200))

    async def _close_globals(self) -> None:
        if self._global_follower is not None:
            self._global_follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await self._global_follower
                except Exception:  # already raised by run() if it saw it; never lost
                    log.exception("the global tables' reader of %s failed",
                                  self.topology.application_id)
        if self._global_reader is not None:
            await self._global_reader.close()
        for store in self.global_stores.values():
            store.close()
        self.global_stores.clear()


def _uncommitted(headers: tuple[tuple[str, bytes | None], ...],
                 committed: dict[str, int]) -> bool:
    """The changelog record was caused by an input record at or past its topic's committed
    offset (records written before source headers existed have none: kept)."""
    for name, value in headers:
        if name == SOURCE_HEADER and value is not None:
            topic, offset = decode_source(value)
            return offset >= committed.get(topic, 0)
    return False
