"""Replicas this broker hosts for the first time (a topic or partitions just created, a
reassignment onto it), started in batches.

A new replica's directory and its topic-id file must be durable before its Raft group
says anything: a vote or an acknowledgement given from a directory that a crash then
loses (or whose topic-id reads as another topic's, so that the directory is deleted at
the next start) can be given twice. Done one partition at a time on the event loop, that
is two fsyncs per partition in a row, and creating 1,000 partitions took tens of seconds.
Here the partitions a reconcile pass opens are made durable together, in the fsync
workers: the topic-id of each (written by the loop, renamed into place), then the data
directory once for all the new directory entries, and each partition directory (for the
topic-id's entry in it: votes and terms go to the broker's state journal, so no state
write of the partition's own fsyncs that directory). Only then are the groups added to
the Raft host, all at once; messages for them in the meantime are kept by the host.

A new group whose voters all start together is elected at once by its preferred replica
(the first of its assignment, as the controller placed it), rather than after an
election timeout: it campaigns as soon as it starts, while the others wait their
randomized timeouts as usual. That is an ordinary Raft campaign (any replica may start
one at any time; safety rests on the votes), so nothing else changes: if the preferred
replica is slow or down, another one times out and is elected as before."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from odradek.broker.replication.host import RaftGroup, RaftHost
from odradek.raft import NO_INDEX, Message, MessageType
from odradek.storage.cleaner import fsync_dir

log = logging.getLogger("odradek.broker")

# Jobs a batch is split into, so that the fsync workers run them side by side (the disk
# serves concurrent fsyncs in shared journal commits).
PARALLEL_JOBS = 4
RETRY_AFTER_S = 0.5


@dataclass
class _Pending:
    group: RaftGroup
    id_file: Path
    preferred: bool


def clear_if_stale(directory: Path, id_file: Path, topic_id: str) -> bool:
    """Is this replica new here? A directory of a deleted topic of the same name (another
    topic id, or none written) is removed first."""
    fresh = not id_file.exists() or id_file.read_text() != topic_id
    if fresh and directory.exists():
        shutil.rmtree(directory)
    return fresh


def write_unsynced(path: Path, text: str) -> None:
    """Written whole under a temporary name and renamed, so never torn; made durable by
    the batch before anything depends on it."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def sync_id_file(id_file: Path) -> None:
    """The topic-id file and its entry in the partition directory."""
    fsync_dir(id_file)  # fsync_dir opens read-only and fsyncs, which does for a file too
    fsync_dir(id_file.parent)


def campaign_if_new(host: RaftHost, group: RaftGroup) -> None:
    """The preferred replica of a group that has never had a term or an entry campaigns
    now (Raft's TIMEOUT_NOW, which the core answers with an immediate campaign)."""
    node = group.node
    if node.term != 0 or node.vote is not None or node.last_index != NO_INDEX:
        return
    if not node.promotable():
        return
    node.step(Message(MessageType.TIMEOUT_NOW, host.broker_id, host.broker_id, node.term))
    host.schedule(group.name)


class NewReplicas:
    def __init__(self, host: RaftHost, data_dir: Path,
                 started: Callable[[RaftGroup], None] = lambda _: None) -> None:
        self.host = host
        self.data_dir = data_dir
        self._started = started
        self._batch: list[_Pending] = []
        self._waiting: dict[str, RaftGroup] = {}  # name -> group being made durable

    @property
    def batched(self) -> bool:
        """Without fsync workers (the simulation) each replica is made durable inline."""
        return self.host.syncer is not None

    def add(self, group: RaftGroup, id_file: Path, preferred: bool) -> None:
        """Starts the group with the next flush(), once its directory is durable."""
        self.host.expect(group.name)
        self._waiting[group.name] = group
        self._batch.append(_Pending(group, id_file, preferred))

    def start_now(self, group: RaftGroup, preferred: bool) -> None:
        self.host.add(group)
        self._started(group)
        if preferred:
            campaign_if_new(self.host, group)

    def forget(self, name: str) -> None:
        """The replica was closed before it started."""
        self._waiting.pop(name, None)

    def flush(self) -> None:
        """Makes the batch collected since the last flush durable, then starts it."""
        batch, self._batch = self._batch, []
        if batch:
            self._submit(batch)

    def _submit(self, batch: list[_Pending]) -> None:
        syncer = self.host.syncer
        assert syncer is not None
        jobs = [batch[i::PARALLEL_JOBS] for i in range(min(PARALLEL_JOBS, len(batch)))]
        outcomes: list[tuple[list[_Pending], list[BaseException | None]]] = []
        # The data directory's fsync covers the entries of every directory made before
        # it is called, and all of them were made before this submit.
        dir_error: list[BaseException] = []

        def sync_data_dir() -> None:
            try:
                fsync_dir(self.data_dir)
            except OSError as exc:
                dir_error.append(exc)

        def done(job: list[_Pending], results: list[BaseException | None]) -> None:
            outcomes.append((job, results[1:] if job is jobs[0] else results))
            if len(outcomes) == len(jobs):
                self._finish(outcomes, dir_error)

        for job in jobs:
            syncs: list[Callable[[], None]] = [
                functools.partial(sync_id_file, p.id_file) for p in job]
            if job is jobs[0]:
                syncs.insert(0, sync_data_dir)
            syncer.submit(syncs, functools.partial(done, job))

    def _finish(self, outcomes: list[tuple[list[_Pending], list[BaseException | None]]],
                dir_error: list[BaseException]) -> None:
        failed: list[_Pending] = []
        started = 0
        for job, results in outcomes:
            for pending, error in zip(job, results, strict=True):
                name = pending.group.name
                if self._waiting.get(name) is not pending.group:
                    continue  # closed (topic deleted, broker stopping) meanwhile
                if error is not None or dir_error:
                    failed.append(pending)
                    continue
                del self._waiting[name]
                self.start_now(pending.group, pending.preferred)
                started += 1
        if started:
            log.debug("started %d new replicas", started)
        if failed:
            reason = dir_error[0] if dir_error else next(
                e for job, results in outcomes for e in results if e is not None)
            log.warning("%d new replicas could not be made durable (%s); retrying",
                        len(failed), reason)
            asyncio.get_running_loop().call_later(RETRY_AFTER_S, self._submit, failed)
