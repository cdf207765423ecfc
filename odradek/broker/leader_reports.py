"""The elections this broker's replicas win, reported to the metadata in batches.

Every partition's new leader tells the controller (so that every broker's metadata names
it). One proposal per election made 1,000 proposals for a topic of 1,000 partitions: the
controller fell behind, reports timed out after a minute and were dropped, and those
partitions showed no leader in the metadata until their next election. Here the elections
of one moment become one PartitionLeaders command, one proposal at a time; a report that
fails is kept and goes with the next one, unless a later election of the same partition
replaced it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from odradek.broker.errors import BrokerError
from odradek.broker.metadata.commands import Command, LeaderReport, PartitionLeaders

log = logging.getLogger("odradek.broker")

REPORT_TIMEOUT_S = 60.0
RETRY_AFTER_S = 0.5


class LeaderReporter:
    def __init__(self, broker_id: int,
                 propose: Callable[[Command, float], Awaitable[int]]) -> None:
        self.broker_id = broker_id
        self._propose = propose
        self._pending: dict[tuple[str, int], LeaderReport] = {}
        self._wake = asyncio.Event()

    def won(self, topic: str, partition: int, term: int, topic_id: str | None) -> None:
        key = (topic, partition)
        old = self._pending.get(key)
        if old is None or old.term <= term:
            self._pending[key] = LeaderReport(topic, partition, term, topic_id)
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # the elections of this loop turn go together
            batch, self._pending = self._pending, {}
            if not batch:
                continue
            try:
                await self._propose(PartitionLeaders(self.broker_id, tuple(batch.values())),
                                    REPORT_TIMEOUT_S)
            except BrokerError as exc:
                log.warning("could not report %d elections: %s; retrying", len(batch),
                            exc.message)
                for key, report in batch.items():
                    newer = self._pending.get(key)
                    if newer is None or newer.term < report.term:
                        self._pending[key] = report
                await asyncio.sleep(RETRY_AFTER_S)
                self._wake.set()
