"""Opening the files of the replicas a broker is given, off the event loop.

A replica's files (its directory, first segment and indexes, durable-end slots, topic-id
file; on a restart, the recovery of all of them) take 1-5 ms of small file operations to
open. Done on the event loop for a CreateTopic of 1,000 partitions, that held the loop
for seconds: no group ticked, no vote or heartbeat was answered, and the metadata
controller could change under the creation. Here the file work runs in worker threads,
JOB_SIZE replicas per job, and the loop only registers each job's replicas once their
files are open (ClusterNode._register_partition). Without workers (unit tests) the same
work runs inline, JOB_SIZE replicas per pass of the loop."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from odradek.broker.data_dir import write_durably
from odradek.broker.new_replicas import clear_if_stale, write_unsynced
from odradek.broker.replication.host import Syncer
from odradek.storage import LogConfig, PartitionLog

log = logging.getLogger("odradek.broker")

# Replicas per job (and per inline pass): a job's registration on the loop stays short,
# and the first replicas start while the rest are still being opened.
JOB_SIZE = 32
RETRY_AFTER_S = 1.0  # before a replica whose files failed to open (a disk error) is tried again

Key = tuple[str, int]


@dataclass(frozen=True)
class OpenRequest:
    key: Key
    topic_id: str
    directory: Path
    config: LogConfig


@dataclass
class OpenedFiles:
    request: OpenRequest
    log: PartitionLog
    fresh: bool  # the replica is new on this broker (its topic-id file was just written)


def open_files(request: OpenRequest, clock: Callable[[], int], batched: bool) -> OpenedFiles:
    """The replica's log, created or recovered. A fresh replica's topic-id file is
    written whole; durable at once unless `batched` (NewReplicas makes it durable with the
    rest of its batch before the group starts)."""
    id_file = request.directory / "topic-id"
    fresh = clear_if_stale(request.directory, id_file, request.topic_id)
    plog = PartitionLog.open(request.directory, request.config, clock=clock)
    if fresh:
        (write_unsynced if batched else write_durably)(id_file, request.topic_id)
    return OpenedFiles(request, plog, fresh)


class ReplicaOpener:
    """Runs open_files for batches of requests on `workers` and hands what opened to
    `opened` on the event loop, one job at a time. A replica that failed to open is held
    back for RETRY_AFTER_S, then `retry` is called (the node reconciles again)."""

    def __init__(self, workers: Syncer, clock: Callable[[], int], batched: bool,
                 opened: Callable[[list[OpenedFiles]], None],
                 retry: Callable[[], None]) -> None:
        self._workers = workers
        self._clock = clock
        self._batched = batched  # as NewReplicas.batched: who makes the topic-id durable
        self._opened = opened
        self._retry = retry
        self.in_flight: dict[Key, str] = {}  # key -> topic id, while its files open
        self.held: set[Key] = set()  # failed, waiting to be tried again
        self._timers: dict[int, asyncio.TimerHandle] = {}  # the retries due, by number
        self.stopped = False
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, requests: list[OpenRequest]) -> None:
        for request in requests:
            self.in_flight[request.key] = request.topic_id
        if self.in_flight:
            self._idle.clear()
        for start in range(0, len(requests), JOB_SIZE):
            chunk = requests[start:start + JOB_SIZE]
            results: list[OpenedFiles] = []
            jobs: list[Callable[[], None]] = [
                functools.partial(self._open_into, request, results) for request in chunk]
            self._workers.submit(jobs, functools.partial(self._done, chunk, results))

    def busy(self, key: Key) -> bool:
        return key in self.in_flight or key in self.held

    def _open_into(self, request: OpenRequest, results: list[OpenedFiles]) -> None:
        results.append(open_files(request, self._clock, self._batched))

    def _done(self, chunk: list[OpenRequest], results: list[OpenedFiles],
              outcomes: list[BaseException | None]) -> None:
        for request in chunk:
            self.in_flight.pop(request.key, None)
        if not self.in_flight:
            self._idle.set()
        if self.stopped:  # the node stopped while these opened: nobody will use them
            for opened in results:
                opened.log.close()
            return
        failed = [request.key for request, outcome in zip(chunk, outcomes, strict=True)
                  if outcome is not None]
        for request, outcome in zip(chunk, outcomes, strict=True):
            if outcome is not None:
                log.error("could not open the files of %s-%d (%s: %s); trying again in "
                          "%.0f s", *request.key, type(outcome).__name__, outcome,
                          RETRY_AFTER_S)
        if failed:
            self.held.update(failed)
            number = len(self._timers) and max(self._timers) + 1
            self._timers[number] = asyncio.get_running_loop().call_later(
                RETRY_AFTER_S, self._release, number, failed)
        self._opened(results)

    def _release(self, number: int, keys: list[Key]) -> None:
        del self._timers[number]
        self.held.difference_update(keys)
        self._retry()

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Waits (bounded) for the jobs in flight, whose logs are then closed unused."""
        self.stopped = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            log.warning("%d replicas were still opening at the stop", len(self.in_flight))
