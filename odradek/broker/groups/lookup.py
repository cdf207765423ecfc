"""Partition offsets (earliest, latest, by time) for group admin and lag, asked of each
partition's leader over gRPC (the coordinator rarely leads the partitions a group reads)."""

from __future__ import annotations

import grpc

from odradek.broker.cluster import ClusterNode
from odradek.broker.errors import BrokerError, Reason, unknown_topic
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc

LOOKUP_TIMEOUT_S = 5.0


class OffsetLookup:
    def __init__(self, cluster: ClusterNode) -> None:
        self.cluster = cluster
        # The last log end offset seen per partition (for lag gauges at scrape time).
        self.end_offsets: dict[tuple[str, int], int] = {}

    def partition_count(self, topic: str) -> int:
        info = self.cluster.image.topics.get(topic)
        if info is None:
            raise unknown_topic(topic)
        return len(info.partitions)

    async def offset(self, topic: str, partition: int, spec: int, timestamp_ms: int = 0) -> int:
        """The offset for spec (OFFSET_SPEC_*); for a timestamp past the last record, the
        log end offset."""
        info = self.cluster.image.partition(topic, partition)
        if info is None:
            raise unknown_topic(topic, partition)
        address = self.cluster.address_of(info.leader if info.leader >= 0 else None)
        if address is None:
            raise BrokerError(Reason.LEADER_NOT_AVAILABLE,
                              f"partition {partition} of topic {topic!r} has no leader now",
                              {"topic": topic, "partition": str(partition)})
        stub = pb_grpc.BrokerStub(self.cluster._channel(address))  # type: ignore[no-untyped-call]
        request = pb.ListOffsetsRequest(topic=topic, partition=partition, spec=spec,  # type: ignore[arg-type]
                                        timestamp_ms=timestamp_ms)
        try:
            reply = await stub.ListOffsets(request, timeout=LOOKUP_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise BrokerError(Reason.LEADER_NOT_AVAILABLE,
                              f"could not read offsets of partition {partition} of topic "
                              f"{topic!r} from its leader: {exc.details()}",
                              {"topic": topic, "partition": str(partition)}) from None
        if spec == pb.OFFSET_SPEC_LATEST:
            self.end_offsets[(topic, partition)] = int(reply.offset)
        return int(reply.offset)

    async def end_offset(self, topic: str, partition: int) -> int | None:
        """The log end offset, or None when the leader cannot be asked now."""
        try:
            return await self.offset(topic, partition, pb.OFFSET_SPEC_LATEST)
        except BrokerError:
            return None
