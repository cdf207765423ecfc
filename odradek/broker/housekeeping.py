"""Retention and compaction of the hosted partitions, with the slow file work in one
worker thread: cleaning segments and removing dropped ones' files can take seconds on a
large partition, and a produce or a fetch must not wait behind them on the event loop.
Retention's decisions stay on the loop (they are quick and change the log's start); the
log's own lock keeps the segment list consistent for the swap a compaction ends with."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from odradek.broker.metrics.broker import BrokerMetrics
from odradek.broker.replication.replica import ReplicatedPartition
from odradek.storage import PartitionLog
from odradek.storage.log import remove_files

log = logging.getLogger("odradek.broker")


class Housekeeper:
    def __init__(self, metrics: BrokerMetrics) -> None:
        self.metrics = metrics
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="odradek-housekeeping")

    def adopt(self, plog: PartitionLog) -> None:
        """Dropped segments' files of this log are removed by the worker."""
        plog.file_remover = self._remove

    def _remove(self, paths: list[Path]) -> None:
        if paths:
            self._worker.submit(remove_files, paths)

    async def run_once(self, partitions: Callable[[], list[ReplicatedPartition]]) -> None:
        """One pass of retention and compaction over every partition, one at a time."""
        loop = asyncio.get_running_loop()
        for partition in partitions():
            if partition.closed:
                continue
            config = partition.log.config
            try:
                if config.delete:
                    deleted = partition.log.enforce_retention()
                    self.metrics.retention_ran(partition.topic, deleted)
                if config.compact:
                    upto = partition.high_watermark  # committed: never truncated
                    stats = await loop.run_in_executor(self._worker, partition.log.compact,
                                                       upto)
                    self.metrics.compaction_ran(partition.topic, stats.segments_cleaned,
                                                stats.bytes_before - stats.bytes_after)
            except Exception:
                if partition.closed:  # closed or deleted meanwhile: nothing is wrong
                    continue
                self.metrics.housekeeping_errors.inc()
                log.exception("housekeeping failed for %s-%d", partition.topic, partition.index)

    async def stop(self) -> None:
        """Waits for the work under way (a compaction ends with its swap or not at all)."""
        await asyncio.get_running_loop().run_in_executor(None, self._worker.shutdown, True)
