"""Where partition leadership goes: back to each partition's preferred replica once it
has caught up (so leaders stay spread over the brokers), and off a broker that is about
to stop (a controlled shutdown, so that a rolling restart costs no election)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from odradek.broker.metadata.image import MetadataImage
from odradek.broker.names import partition_group
from odradek.broker.replication.host import RaftHost
from odradek.broker.replication.replica import ReplicatedPartition

BALANCE_INTERVAL_S = 5.0


class _Settings(Protocol):
    @property
    def auto_leader_rebalance(self) -> bool: ...


class _Cluster(Protocol):
    @property
    def id(self) -> int: ...

    image: MetadataImage
    host: RaftHost
    @property
    def settings(self) -> _Settings: ...
    partitions: dict[tuple[str, int], ReplicatedPartition]

    def broker_alive(self, broker_id: int) -> bool: ...


def _schedule(cluster: _Cluster, topic: str, index: int) -> None:
    cluster.host.schedule(partition_group(topic, index))


async def balance_loop(cluster: _Cluster) -> None:
    while True:
        await asyncio.sleep(BALANCE_INTERVAL_S)
        if not cluster.settings.auto_leader_rebalance:
            continue
        for (topic, index), partition in list(cluster.partitions.items()):
            info = cluster.image.partition(topic, index)
            node = partition.node
            if info is None or not node.is_leader() or info.target_replicas is not None:
                continue
            preferred = info.replicas[0]
            if preferred == cluster.id:
                continue
            progress = node.progress.get(preferred)
            if progress is not None and progress.match >= node.last_index:
                node.transfer_leadership(preferred)
                _schedule(cluster, topic, index)


def hand_off(cluster: _Cluster) -> int:
    """Asks a live, caught-up follower of each partition this broker leads to take over;
    the count of partitions that have none to take over, or whose handover has not
    completed yet."""
    pending = 0
    for (topic, index), partition in list(cluster.partitions.items()):
        node = partition.node
        if not node.is_leader():
            continue
        ready = [v for v in node.config.voters if v != cluster.id and cluster.broker_alive(v)
                 and (p := node.progress.get(v)) is not None and p.match >= node.commit_index]
        if not ready:
            continue  # nobody to take over: it stays available until we stop
        pending += 1
        if node.lead_transferee not in ready:
            node.transfer_leadership(max(ready, key=lambda v: node.progress[v].match))
            _schedule(cluster, topic, index)
    return pending


def broker_lost(cluster: _Cluster, broker_id: int) -> None:
    """The transport found broker_id gone (a broken connection, new ones refused): this
    broker's leaders stop counting its last acknowledgements toward their lease (its
    other followers may elect a successor soon), and the groups it led campaign at once."""
    for partition in list(cluster.partitions.values()):
        partition.peer_lost(broker_id)
    cluster.host.broker_lost(broker_id)
