"""Leaders report their partitions' in-sync replicas to the metadata log.

Only a partition's leader knows which followers keep up. Without these reports a broker
that does not lead a partition answered metadata with every replica in sync, so
`odradek cluster health` and `topic describe` said healthy or not depending on which
broker they asked. A report goes out when a leader's view differs from the recorded one
(one command for all the partitions it leads, as Kafka's AlterPartition), so a quiet
cluster writes nothing.

A quiet (quiesced) group's in-sync set can only change with its brokers' liveness, since
its followers were caught up when it fell quiet. So a pass skips quiet groups unless the
metadata image or the set of live brokers changed, and still takes them all every
FULL_PASS_S: two passes a second over a thousand idle partitions cost a visible part of
an idle broker's CPU. The other passes walk only the awake groups (the Raft host's list),
not every partition to skip the quiet ones: the walk itself was 17% of an idle broker's
busy samples with 1,000 quiet partitions.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from odradek.broker import clock
from odradek.broker.errors import BrokerError
from odradek.broker.metadata.commands import Command, InSyncReport, PartitionsInSync
from odradek.broker.metadata.image import MetadataImage
from odradek.broker.replication.replica import ReplicatedPartition

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 0.5
FULL_PASS_S = 2.0


class _Cluster(Protocol):
    @property
    def id(self) -> int: ...

    image: MetadataImage
    partitions: dict[tuple[str, int], ReplicatedPartition]
    broker_alive: Callable[[int], bool]

    def awake_partitions(self) -> list[ReplicatedPartition]: ...

    async def propose(self, command: Command, timeout_s: float = ...) -> int: ...


def in_sync_changes(broker_id: int, partitions: Iterable[ReplicatedPartition],
                    image: MetadataImage,
                    topic_ids: Mapping[tuple[str, int], str]) -> list[InSyncReport]:
    """Of ``partitions``, those this broker leads whose in-sync set differs from the
    recorded one. A leader whose election is not recorded yet waits: its report would be
    refused."""
    reports = []
    for partition in partitions:
        node = partition.node
        if not node.is_leader() or partition.closed:
            continue
        topic, index = partition.topic, partition.index
        info = image.partition(topic, index)
        if info is None or info.leader != broker_id or info.leader_term != node.term:
            continue
        live = tuple(partition.in_sync_replicas())
        if live != info.in_sync:
            reports.append(InSyncReport(topic, index, node.term, live,
                                        topic_ids.get((topic, index))))
    return reports


async def report_loop(cluster: _Cluster, topic_ids: Mapping[tuple[str, int], str]) -> None:
    seen: MetadataImage | None = None
    seen_alive: frozenset[int] = frozenset()
    full_at = -math.inf
    while True:
        await asyncio.sleep(REPORT_INTERVAL_S)
        image, now = cluster.image, clock.monotonic()
        alive = frozenset(b for b in image.brokers if cluster.broker_alive(b))
        partitions: Iterable[ReplicatedPartition]
        if image is seen and alive == seen_alive and now - full_at < FULL_PASS_S:
            partitions = cluster.awake_partitions()
        else:
            seen, seen_alive, full_at = image, alive, now
            partitions = list(cluster.partitions.values())
        reports = in_sync_changes(cluster.id, partitions, image, topic_ids)
        if not reports:
            continue
        try:
            await cluster.propose(PartitionsInSync(cluster.id, tuple(reports)), timeout_s=10)
        except BrokerError as exc:  # no controller for now: the next pass reports again
            log.debug("in-sync report of %d partitions waits: %s", len(reports), exc.message)
