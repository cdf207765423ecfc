"""Partition offsets (earliest, latest, by time) asked of a partition's leader."""

from __future__ import annotations

from typing import Protocol

import grpc

from odradek.broker.errors import BrokerError
from odradek.broker.grpc.status import from_rpc_error
from odradek.broker.peers.channels import ChannelPool
from odradek.broker.reasons import Reason
from odradek.broker.topics.reads import OffsetSpec
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc

SPECS = {OffsetSpec.EARLIEST: pb.OFFSET_SPEC_EARLIEST, OffsetSpec.LATEST: pb.OFFSET_SPEC_LATEST,
         OffsetSpec.TIMESTAMP: pb.OFFSET_SPEC_TIMESTAMP}


class OffsetsClient(Protocol):
    async def list_offsets(self, address: str, topic: str, partition: int, spec: OffsetSpec,
                           timestamp_ms: int, timeout_s: float) -> int:
        """The offset the leader at ``address`` answers; raises BrokerError."""


class GrpcOffsetsClient:
    def __init__(self, channels: ChannelPool) -> None:
        self._channels = channels

    async def list_offsets(self, address: str, topic: str, partition: int, spec: OffsetSpec,
                           timestamp_ms: int, timeout_s: float) -> int:
        stub = pb_grpc.BrokerStub(self._channels.get(address))  # type: ignore[no-untyped-call]
        request = pb.ListOffsetsRequest(topic=topic, partition=partition, spec=SPECS[spec],
                                        timestamp_ms=timestamp_ms)
        try:
            reply = await stub.ListOffsets(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            error = from_rpc_error(exc, unreachable=Reason.LEADER_NOT_AVAILABLE)
            raise BrokerError(error.reason, f"could not read offsets of partition "
                              f"{partition} of topic {topic!r} from its leader: "
                              f"{error.message}", error.metadata) from None
        return int(reply.offset)
