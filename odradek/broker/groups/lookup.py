"""Partition offsets (earliest, latest, by time) for group admin and lag, asked of each
partition's leader (the coordinator rarely leads the partitions a group reads).

A partition this broker leads is read in process, not through its own gRPC port: there the
call would carry no broker identity on a plaintext listener, or one without client
certificates, and with authorization on it would run as ANONYMOUS (lag -1, resets
refused). Other leaders are only reached over mutual TLS when authorization is on
(auth/setup.py), so those calls carry the broker's certificate principal."""

from __future__ import annotations

from odradek.broker.cluster import ClusterNode
from odradek.broker.errors import BrokerError, Reason, unknown_topic
from odradek.broker.peers.offsets import GrpcOffsetsClient, OffsetsClient
from odradek.broker.topic_admin import TopicAdmin
from odradek.broker.topics import reads
from odradek.broker.topics.reads import OffsetSpec

LOOKUP_TIMEOUT_S = 5.0


class OffsetLookup:
    def __init__(self, cluster: ClusterNode, client: OffsetsClient | None = None,
                 local: TopicAdmin | None = None) -> None:
        self.cluster = cluster
        self.local = local
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
        if self.local is not None and info.leader == self.cluster.id:
            answer = reads.list_offsets(self.local.leader_partition(topic, partition), spec,
                                        timestamp_ms)
            return self._seen(topic, partition, spec, answer.offset)
        address = self.cluster.address_of(info.leader if info.leader >= 0 else None)
        if address is None:
            raise BrokerError(Reason.LEADER_NOT_AVAILABLE,
                              f"partition {partition} of topic {topic!r} has no leader now",
                              {"topic": topic, "partition": str(partition)})
        offset = await self.client.list_offsets(address, topic, partition, spec, timestamp_ms,
                                                LOOKUP_TIMEOUT_S)
        return self._seen(topic, partition, spec, offset)

    def _seen(self, topic: str, partition: int, spec: OffsetSpec, offset: int) -> int:
        if spec == OffsetSpec.LATEST:
            self.end_offsets[(topic, partition)] = offset
        return offset

    async def end_offset(self, topic: str, partition: int) -> int | None:
        """The log end offset, or None when the leader cannot be asked now."""
        try:
            return await self.offset(topic, partition, OffsetSpec.LATEST)
        except BrokerError:
            return None
