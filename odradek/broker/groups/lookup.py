"""Partition offsets (earliest, latest, by time) for group admin and lag, asked of each
partition's leader (the coordinator rarely leads the partitions a group reads)."""

from __future__ import annotations

from odradek.broker.cluster import ClusterNode
from odradek.broker.errors import BrokerError, Reason, unknown_topic
from odradek.broker.peers.offsets import GrpcOffsetsClient, OffsetsClient
from odradek.broker.topics.reads import OffsetSpec

LOOKUP_TIMEOUT_S = 5.0


class OffsetLookup:
    def __init__(self, cluster: ClusterNode, client: OffsetsClient | None = None) -> None:
        self.cluster = cluster
        self.client: OffsetsClient = client or GrpcOffsetsClient(cluster.channels)
        # The last log end offset seen per partition (for lag gauges at scrape time).
        self.end_offsets: dict[tuple[str, int], int] = {}

    def partition_count(self, topic: str) -> int:
        info = self.cluster.image.topics.get(topic)
        if info is None:
            raise unknown_topic(topic)
        return len(info.partitions)

    async def offset(self, topic: str, partition: int, spec: OffsetSpec,
                     timestamp_ms: int = 0) -> int:
        """The offset for spec; for a timestamp past the last record, the log end offset."""
        info = self.cluster.image.partition(topic, partition)
        if info is None:
            raise unknown_topic(topic, partition)
        address = self.cluster.address_of(info.leader if info.leader >= 0 else None)
        if address is None:
            raise BrokerError(Reason.LEADER_NOT_AVAILABLE,
                              f"partition {partition} of topic {topic!r} has no leader now",
                              {"topic": topic, "partition": str(partition)})
        offset = await self.client.list_offsets(address, topic, partition, spec, timestamp_ms,
                                                LOOKUP_TIMEOUT_S)
        if spec == OffsetSpec.LATEST:
            self.end_offsets[(topic, partition)] = offset
        return offset

    async def end_offset(self, topic: str, partition: int) -> int | None:
        """The log end offset, or None when the leader cannot be asked now."""
        try:
            return await self.offset(topic, partition, OffsetSpec.LATEST)
        except BrokerError:
            return None
