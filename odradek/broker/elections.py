"""Preferred-leader election on demand (Kafka's ElectLeaders, election type preferred).

A partition's leader hands leadership to the partition's first replica when that replica
is alive and in sync, and waits until it leads. Whichever broker takes the request
answers for the partitions it leads and passes the others on to their leaders (once:
a passed-on request is never passed on again, so leadership moving meanwhile gives
NOT_LEADER rather than a loop). Plain types, no protocol: the front ends translate."""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from odradek.broker.errors import BrokerError, Reason, to_broker_error, unknown_topic
from odradek.broker.metadata.image import MetadataImage
from odradek.broker.names import partition_group
from odradek.broker.replication.host import RaftHost
from odradek.broker.replication.replica import ReplicatedPartition

HANDOVER_TIMEOUT_S = 10.0
_POLL_S = 0.05

Partition = tuple[str, int]


class Outcome(enum.Enum):
    ELECTED = "elected"
    ALREADY_PREFERRED = "already preferred"
    FAILED = "failed"


@dataclass(frozen=True)
class ElectionResult:
    topic: str
    partition: int
    outcome: Outcome
    leader: int = -1
    error: BrokerError | None = None


# Asks broker `leader` to elect for `partitions` (which it leads), answered as results.
Forward = Callable[[int, list[Partition], float], Awaitable[list[ElectionResult]]]


class _Cluster(Protocol):
    @property
    def id(self) -> int: ...

    image: MetadataImage
    host: RaftHost
    partitions: dict[Partition, ReplicatedPartition]

    def broker_alive(self, broker_id: int) -> bool: ...


class Elections:
    def __init__(self, cluster: _Cluster) -> None:
        self.broker_id = cluster.id
        self._cluster = cluster
        self._partitions = cluster.partitions
        self._host = cluster.host
        self._broker_alive = cluster.broker_alive

    async def elect(self, wanted: Sequence[Partition] | None, forward: Forward | None,
                    timeout_s: float = HANDOVER_TIMEOUT_S) -> list[ElectionResult]:
        """Results in the order asked (every partition of the cluster when wanted is
        None); forward None: answer only for what this broker leads."""
        image = self._cluster.image
        if wanted is None:
            wanted = [(name, i) for name, t in sorted(image.topics.items())
                      for i in range(len(t.partitions))]
        local: list[Partition] = []
        remote: dict[int, list[Partition]] = {}
        failed: dict[Partition, ElectionResult] = {}
        for tp in wanted:
            info = image.partition(*tp)
            partition = self._partitions.get(tp)
            if info is None:
                failed[tp] = self._failed(tp, unknown_topic(tp[0], tp[1] if tp[0] in
                                                            image.topics else None))
            elif (partition is not None and partition.node.is_leader()) or forward is None:
                local.append(tp)
            elif info.leader < 0:
                failed[tp] = self._failed(tp, BrokerError(
                    Reason.LEADER_NOT_AVAILABLE, f"partition {tp[1]} of topic {tp[0]!r} has "
                    "no leader right now; retry shortly"))
            else:
                remote.setdefault(info.leader, []).append(tp)
        jobs: list[Awaitable[list[ElectionResult]]] = [self._local(local, timeout_s)]
        jobs += [self._remote(forward, b, tps, timeout_s)  # type: ignore[arg-type]
                 for b, tps in remote.items()]
        by_partition = dict(failed)
        for results in await asyncio.gather(*jobs):
            by_partition.update({(r.topic, r.partition): r for r in results})
        return [by_partition[tp] for tp in wanted]

    async def _local(self, tps: list[Partition], timeout_s: float) -> list[ElectionResult]:
        async def one(tp: Partition) -> ElectionResult:
            try:
                return await self.elect_here(tp, timeout_s)
            except Exception as exc:
                error = to_broker_error(exc)
                if error is None:
                    raise
                return self._failed(tp, error)
        return list(await asyncio.gather(*(one(tp) for tp in tps)))

    async def _remote(self, forward: Forward, broker: int, tps: list[Partition],
                      timeout_s: float) -> list[ElectionResult]:
        try:
            return await forward(broker, tps, timeout_s)
        except Exception as exc:
            error = to_broker_error(exc)
            if error is None:
                raise
            return [self._failed(tp, error) for tp in tps]

    async def elect_here(self, tp: Partition, timeout_s: float) -> ElectionResult:
        topic, index = tp
        info = self._cluster.image.partition(topic, index)
        partition = self._partitions.get(tp)
        if info is None:
            raise unknown_topic(topic, index)
        if partition is None or not partition.node.is_leader():
            if partition is not None:
                raise partition.not_leader_error()
            raise BrokerError(Reason.NOT_LEADER, f"broker {self.broker_id} holds no replica "
                              f"of partition {index} of topic {topic!r}")
        preferred = info.replicas[0]
        if preferred == self.broker_id:
            return ElectionResult(topic, index, Outcome.ALREADY_PREFERRED, preferred)
        if info.target_replicas is not None:
            raise BrokerError(Reason.REASSIGNMENT_IN_PROGRESS, f"partition {index} of topic "
                              f"{topic!r} is being reassigned; elect once the move is done")
        where = f"partition {index} of topic {topic!r}"
        unavailable = BrokerError(Reason.PREFERRED_LEADER_NOT_AVAILABLE,
                                  f"the preferred replica of {where}, broker {preferred}, is "
                                  "not in sync (or not alive); the leader stays "
                                  f"broker {self.broker_id}")
        if not self._broker_alive(preferred) or preferred not in partition.in_sync_replicas():
            raise unavailable
        node = partition.node
        deadline = time.monotonic() + timeout_s
        while partition.node.leader != preferred:
            # Gone since the check (killed a moment before, its last words still fresh):
            # no point waiting out the timeout for it.
            if not self._broker_alive(preferred) and partition.node.is_leader():
                raise unavailable
            if time.monotonic() > deadline:
                raise BrokerError(Reason.PREFERRED_LEADER_NOT_AVAILABLE,
                                  f"broker {preferred} did not take over the leadership of "
                                  f"{where} within {timeout_s:g}s")
            node = partition.node
            if node.is_leader() and node.lead_transferee != preferred:
                node.transfer_leadership(preferred)
                self._host.schedule(partition_group(topic, index))
            await asyncio.sleep(_POLL_S)
        return ElectionResult(topic, index, Outcome.ELECTED, preferred)

    @staticmethod
    def _failed(tp: Partition, error: BrokerError) -> ElectionResult:
        return ElectionResult(tp[0], tp[1], Outcome.FAILED, -1, error)
