"""What one broker asks another, behind interfaces the simulation can replace.

Production talks gRPC: ``GrpcControllerClient`` for the controller calls (metadata
proposals and the observers' metadata fetch) and ``RaftTransport`` (transport.py) for Raft
messages. tests/sim_broker plugs in-memory versions with seeded faults into the same
seams. A call that may succeed when tried again (peer unreachable, no answer in time)
raises ``PeerUnavailable``: the gRPC client raises it for UNAVAILABLE and
DEADLINE_EXCEEDED, exactly the codes ClusterNode retries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import grpc

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
    """The controller calls over the broker's shared channels (``channel(address)``);
    ``drop_channel(address)`` forgets one that failed with UNAVAILABLE."""

    def __init__(self, channel: Callable[[str], grpc.aio.Channel],
                 drop_channel: Callable[[str], None]) -> None:
        self._channel = channel
        self._drop_channel = drop_channel

    def _stub(self, address: str) -> cluster_pb2_grpc.ControllerStub:
        return cluster_pb2_grpc.ControllerStub(self._channel(address))  # type: ignore[no-untyped-call]

    def _translate(self, address: str, exc: grpc.aio.AioRpcError) -> PeerUnavailable | None:
        if exc.code() not in _RETRIABLE:
            return None
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            self._drop_channel(address)
        return PeerUnavailable(exc.details() or str(exc.code()))

    async def propose(self, address: str, command: bytes, timeout_s: float) -> int:
        try:
            reply = await self._stub(address).Propose(
                cluster_pb2.ProposeRequest(command=command), timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            retry = self._translate(address, exc)
            if retry is None:
                raise
            raise retry from None
        return int(reply.offset)

    async def fetch_metadata(self, address: str, offset: int, max_wait_ms: int,
                             timeout_s: float) -> MetadataReply:
        try:
            reply = await self._stub(address).FetchMetadata(
                cluster_pb2.FetchMetadataRequest(offset=offset, max_wait_ms=max_wait_ms),
                timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            retry = self._translate(address, exc)
            if retry is None:
                raise
            raise retry from None
        return MetadataReply(reply.records, int(reply.next_offset), reply.snapshot,
                             reply.controller_id if reply.controller_id >= 0 else None)
