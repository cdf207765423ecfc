"""What one broker asks another, behind interfaces the simulation can replace.

Production talks gRPC: ``GrpcControllerClient`` for the controller calls (metadata
proposals and the observers' metadata fetch) and ``RaftTransport`` (transport.py) for Raft
messages. tests/sim_broker plugs in-memory versions with seeded faults into the same
seams. A call that may succeed when tried again (peer unreachable, no answer in time)
raises ``PeerUnavailable``: the gRPC client raises it for UNAVAILABLE and
DEADLINE_EXCEEDED, exactly the codes ClusterNode retries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import grpc

from odradek.broker.grpc.status import from_rpc_error
from odradek.broker.peers.channels import ChannelPool
from odradek.raft import Message
from odradek.v1 import cluster_pb2, cluster_pb2_grpc

_RETRIABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class PeerUnavailable(Exception):
    """The peer could not be reached or did not answer in time: worth another try."""


@dataclass(frozen=True)
class MetadataReply:
    records: bytes
    next_offset: int
    snapshot: bytes
    controller_id: int | None


class ControllerClient(Protocol):
    async def propose(self, address: str, command: bytes, timeout_s: float) -> int:
        """Has the controller at ``address`` append ``command``; returns its offset."""

    async def fetch_metadata(self, address: str, offset: int, max_wait_ms: int,
                             timeout_s: float) -> MetadataReply:
        """Committed metadata from ``offset`` (long-polls up to max_wait_ms)."""


class RaftPeers(Protocol):
    """The Raft side (RaftTransport is the production one): fire-and-forget messages and
    a per-broker liveness signal (anything heard from the peer within ``within_s``)."""

    def send(self, to_broker: int, group: str, msg: Message) -> None: ...

    def alive(self, peer_id: int, within_s: float) -> bool: ...


class GrpcControllerClient:
    """The controller calls over the broker's shared channels. A failure that may pass
    raises PeerUnavailable (and forgets a channel that could not connect); any other
    raises the BrokerError the controller answered with."""

    def __init__(self, channels: ChannelPool) -> None:
        self._channels = channels

    def _stub(self, address: str) -> cluster_pb2_grpc.ControllerStub:
        return cluster_pb2_grpc.ControllerStub(self._channels.get(address))  # type: ignore[no-untyped-call]

    def _translate(self, address: str, exc: grpc.aio.AioRpcError) -> Exception:
        if exc.code() not in _RETRIABLE:
            return from_rpc_error(exc)
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            self._channels.drop(address)
        return PeerUnavailable(exc.details() or str(exc.code()))

    async def propose(self, address: str, command: bytes, timeout_s: float) -> int:
        try:
            reply = await self._stub(address).Propose(
                cluster_pb2.ProposeRequest(command=command), timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise self._translate(address, exc) from None
        return int(reply.offset)

    async def fetch_metadata(self, address: str, offset: int, max_wait_ms: int,
                             timeout_s: float) -> MetadataReply:
        try:
            reply = await self._stub(address).FetchMetadata(
                cluster_pb2.FetchMetadataRequest(offset=offset, max_wait_ms=max_wait_ms),
                timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise self._translate(address, exc) from None
        return MetadataReply(reply.records, int(reply.next_offset), reply.snapshot,
                             reply.controller_id if reply.controller_id >= 0 else None)
