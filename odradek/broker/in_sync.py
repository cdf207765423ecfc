"""Leaders report their partitions' in-sync replicas to the metadata log.

Only a partition's leader knows which followers keep up. Without these reports a broker
that does not lead a partition answered metadata with every replica in sync, so
`odradek cluster health` and `topic describe` said healthy or not depending on which
broker they asked. A report goes out when a leader's view differs from the recorded one
(one command for all the partitions it leads, as Kafka's AlterPartition), so a quiet
cluster writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from odradek.broker.errors import BrokerError
from odradek.broker.metadata.commands import Command, InSyncReport, PartitionsInSync
from odradek.broker.metadata.image import MetadataImage
from odradek.broker.replication.replica import ReplicatedPartition

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 0.5


class _Cluster(Protocol):
    @property
    def id(self) -> int: ...

    image: MetadataImage
    partitions: dict[tuple[str, int], ReplicatedPartition]

    async def propose(self, command: Command, timeout_s: float = ...) -> int: ...


def in_sync_changes(broker_id: int, partitions: Mapping[tuple[str, int], ReplicatedPartition],
                    image: MetadataImage,
                    topic_ids: Mapping[tuple[str, int], str]) -> list[InSyncReport]:
    """The partitions this broker leads whose in-sync set differs from the recorded one.
    A leader whose election is not recorded yet waits: its report would be refused."""
    reports = []
    for (topic, index), partition in partitions.items():
        node = partition.node
        if not node.is_leader():
            continue
        info = image.partition(topic, index)
        if info is None or info.leader != broker_id or info.leader_term != node.term:
            continue
        live = tuple(partition.in_sync_replicas())
        if live != info.in_sync:
            reports.append(InSyncReport(topic, index, node.term, live,
                                        topic_ids.get((topic, index))))
    return reports


async def report_loop(cluster: _Cluster, topic_ids: Mapping[tuple[str, int], str]) -> None:
    while True:
        await asyncio.sleep(REPORT_INTERVAL_S)
        reports = in_sync_changes(cluster.id, cluster.partitions, cluster.image, topic_ids)
        if not reports:
            continue
        try:
            await cluster.propose(PartitionsInSync(cluster.id, tuple(reports)), timeout_s=10)
        except BrokerError as exc:  # no controller for now: the next pass reports again
            log.debug("in-sync report of %d partitions waits: %s", len(reports), exc.message)
