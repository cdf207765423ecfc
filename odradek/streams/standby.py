"""Standby replicas: warm copies of other instances' task stores, kept by reading their
changelogs as they are written, so that a task moving here (its owner crashed or left)
replays only the tail of its changelogs instead of all of them.

A standby keeps its stores in the directory the task would use, and hands over through
the same checkpoint file a cleanly closed task writes: `release` commits the stores and
writes the changelog offsets they hold, and the runtime's task open replays from there.
A standby's stores hold only acknowledged changelog records, but a crash leaves no
checkpoint, so they are rebuilt after one, as an active task's are."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from odradek.client import Consumer, TopicPartition
from odradek.client.connection import Cluster
from odradek.streams.stores import LmdbStore
from odradek.streams.task import TaskId

log = logging.getLogger("odradek.streams")

CHECKPOINT = "checkpoint.json"


@dataclass
class Standby:
    task: TaskId
    directory: Path
    stores: dict[str, LmdbStore]  # store name -> its copy
    changelogs: dict[str, str]  # store name -> changelog topic
    positions: dict[str, int] = field(default_factory=dict)  # next changelog offset

    def partitions(self) -> dict[TopicPartition, str]:
        return {TopicPartition(c, self.task[1]): s for s, c in self.changelogs.items()}


def read_checkpoint(directory: Path) -> dict[str, int] | None:
    """The offsets a clean close left, deleting the file (from now on the stores change,
    and a crash must void it); None when there is none."""
    path = directory / CHECKPOINT
    if not path.exists():
        return None
    offsets: dict[str, int] = json.loads(path.read_text())
    path.unlink()
    return offsets


def write_checkpoint(directory: Path, offsets: dict[str, int]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CHECKPOINT).write_text(json.dumps(offsets))


class Standbys:
    def __init__(self, cluster: Cluster, task_dir: Callable[[TaskId], Path],
                 changelogs: Callable[[TaskId], dict[str, str]]) -> None:
        self._task_dir, self._changelogs = task_dir, changelogs
        self.copies: dict[TaskId, Standby] = {}
        self._reader = Consumer(cluster=cluster, auto_offset_reset="earliest")
        self._follower: asyncio.Task[None] | None = None
        self.applied = 0  # changelog records applied, for tests and logs

    def start(self) -> None:
        self._follower = asyncio.create_task(self._follow())

    def failed(self) -> BaseException | None:
        f = self._follower
        return f.exception() if f is not None and f.done() and not f.cancelled() else None

    def add(self, task: TaskId) -> None:
        directory = self._task_dir(task)
        changelogs = self._changelogs(task)
        offsets = read_checkpoint(directory)
        if offsets is None:
            LmdbStore.wipe(directory)
            offsets = {}
        stores = {name: LmdbStore(directory / name) for name in changelogs}
        copy = Standby(task, directory, stores, changelogs,
                       {name: offsets.get(name, 0) for name in changelogs})
        self.copies[task] = copy
        self._assign()
        for tp, name in copy.partitions().items():
            self._reader.seek(tp, copy.positions[name])
        log.info("standby of task %s started from changelog offsets %s", task, copy.positions)

    def release(self, task: TaskId) -> None:
        """Stops keeping task: its stores closed with a checkpoint of their offsets, so
        that an active task opened next in the same directory (or a later standby)
        replays only what follows."""
        copy = self.copies.pop(task, None)
        if copy is None:
            return
        self._assign()
        for store in copy.stores.values():
            store.close()
        write_checkpoint(copy.directory, copy.positions)

    def _assign(self) -> None:
        # Partitions kept keep their positions (Consumer.assign).
        self._reader.assign([tp for c in self.copies.values() for tp in c.partitions()])

    async def lags(self) -> dict[TaskId, int]:
        """Per standby: changelog records its copies are behind by (end - position)."""
        tps = [(c, tp, name) for c in self.copies.values() for tp, name in c.partitions().items()]
        if not tps:
            return {}
        ends = await self._reader.end_offsets([tp for _, tp, _ in tps])
        out: dict[TaskId, int] = {}
        for copy, tp, name in tps:
            out[copy.task] = out.get(copy.task, 0) + max(0, ends[tp] - copy.positions[name])
        return out

    async def _follow(self) -> None:
        while True:
            if not self.copies:
                await asyncio.sleep(0.1)  # nothing assigned: poll would return at once
                continue
            records = await self._reader.poll(200)
            touched: set[TaskId] = set()
            for r in records:
                copy = self.copies.get((self._task_of(r.topic), r.partition))
                if copy is None:  # released while the poll waited
                    continue
                name = copy.partitions().get(TopicPartition(r.topic, r.partition))
                if name is None or r.offset < copy.positions[name]:
                    continue  # fetched before a seek or a re-add
                if r.key is not None:
                    store = copy.stores[name]
                    store.delete(r.key) if r.value is None else store.put(r.key, r.value)
                copy.positions[name] = r.offset + 1
                touched.add(copy.task)
                self.applied += 1
            for task in touched:
                for store in self.copies[task].stores.values():
                    store.commit()
            # Offsets have gaps (control batches, at a changelog's end too): the reader's
            # position, not the last record's offset, says how far a copy has read.
            for copy in list(self.copies.values()):
                for tp, name in copy.partitions().items():
                    with contextlib.suppress(ValueError):  # released meanwhile
                        position = await self._reader.position(tp)
                        if self.copies.get(copy.task) is copy:
                            copy.positions[name] = max(copy.positions[name], position)

    def _task_of(self, changelog: str) -> int:
        for copy in self.copies.values():
            if changelog in copy.changelogs.values():
                return copy.task[0]
        return -1

    async def close(self) -> None:
        """Every copy released with its checkpoint (a clean stop keeps them warm for the
        next start), then the reader closed."""
        if self._follower is not None:
            self._follower.cancel()
            try:
                await self._follower
            except asyncio.CancelledError:
                log.debug("standby follower stopped")
            except Exception:  # run() raised it already if it saw it; logged, not lost
                log.exception("the standby follower failed")
        for task in list(self.copies):
            self.release(task)
        await self._reader.close()
