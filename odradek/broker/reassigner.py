"""The leader of a partition under reassignment walks it to its target replicas one
membership change at a time, and reports each committed change to the metadata.

Most passes find nothing to do. With nothing to walk, a pass comes when the metadata
image changed or a second went by: five passes a second over every partition were a
visible part of an idle broker's CPU with a thousand partitions."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

from odradek.broker import clock
from odradek.broker.errors import BrokerError
from odradek.broker.metadata.commands import Command, PartitionReplicas
from odradek.broker.metadata.image import MetadataImage, PartitionInfo
from odradek.broker.metadata.placement import reassignment_steps
from odradek.broker.names import partition_group
from odradek.broker.replication.host import RaftHost
from odradek.broker.replication.replica import ReplicatedPartition
from odradek.raft import ConfigChangeType, NotLeader, ProposalDropped

log = logging.getLogger(__name__)

PASS_INTERVAL_S = 0.2
IDLE_PASS_INTERVAL_S = 1.0


class _Cluster(Protocol):
    @property
    def id(self) -> int: ...

    image: MetadataImage
    partitions: dict[tuple[str, int], ReplicatedPartition]
    host: RaftHost

    async def propose(self, command: Command, timeout_s: float = ...) -> int: ...


class Reassigner:
    def __init__(self, cluster: _Cluster, topic_ids: Mapping[tuple[str, int], str],
                 spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self.cluster = cluster
        self._topic_ids = topic_ids
        self._spawn = spawn  # runs a task the cluster node cancels when it stops
        # (topic, partition, config index) of the membership changes reported (or being).
        self._reported: set[tuple[str, int, int]] = set()

    async def run(self) -> None:
        busy, seen, last = True, None, -math.inf
        while True:
            await asyncio.sleep(PASS_INTERVAL_S)
            image, now = self.cluster.image, clock.monotonic()
            if not busy and image is seen and now - last < IDLE_PASS_INTERVAL_S:
                continue
            busy, seen, last = self.walk(), image, now

    def walk(self) -> bool:
        """One pass over the partitions this broker leads; whether any had work."""
        busy = False
        cluster = self.cluster
        for (topic, index), partition in list(cluster.partitions.items()):
            node = partition.node
            if not node.is_leader():
                continue
            info = cluster.image.partition(topic, index)
            if info is None or (info.target_replicas is None
                                and node.config_index <= node.commit_index
                                and node.config.voters.issuperset(info.replicas)
                                and len(node.config.voters) == len(info.replicas)):
                continue  # nothing to walk and nothing to report (the common case)
            busy = True
            try:
                self._step(topic, index, partition, info)
            except (NotLeader, ProposalDropped, ValueError) as exc:
                log.debug("reassignment of %s-%d waits: %s", topic, index, exc)
        return busy

    def _step(self, topic: str, index: int, partition: ReplicatedPartition,
              info: PartitionInfo) -> None:
        node = partition.node
        if node.config_index > node.commit_index:
            return  # a change is still being committed
        me = self.cluster.id
        voters = node.config.voters
        order = list(info.target_replicas or ()) + list(info.replicas)
        current = tuple(sorted(voters, key=lambda b: order.index(b) if b in order else 99))
        key = (topic, index, node.config_index)
        if set(info.replicas) != voters and node.config_index >= 0:
            if key not in self._reported:
                self._reported.add(key)
                self._spawn(self._report(PartitionReplicas(
                    topic, index, current, node.config_index, self._topic_ids.get((topic, index))),
                    key))
            return
        target = info.target_replicas
        if target is None or set(target) == voters:
            return
        steps = reassignment_steps(current, target, leader=me)
        if not steps:
            return
        kind, broker = steps[0]
        if kind == "add":
            node.propose_config_change(ConfigChangeType.ADD_VOTER, broker)
        else:
            lagging = [b for b in voters & set(target) if b != me and (
                (p := node.progress.get(b)) is None or p.match < node.commit_index)]
            if lagging:
                return  # let the new replicas catch up before giving up an old one
            if broker == me:
                successors = [b for b in target if b in voters and b != me]
                if successors:
                    node.transfer_leadership(successors[0])
            else:
                node.propose_config_change(ConfigChangeType.REMOVE_VOTER, broker)
        self.cluster.host.schedule(partition_group(topic, index))

    async def _report(self, command: Command, key: tuple[str, int, int]) -> None:
        try:
            await self.cluster.propose(command, timeout_s=60)
        except BrokerError as exc:
            log.warning("could not report %s: %s", command, exc.message)
            self._reported.discard(key)  # reported again on the next pass, or the move stalls
