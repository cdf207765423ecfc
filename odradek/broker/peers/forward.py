"""Admin requests a broker that is not the controller passes on to the controller."""

from __future__ import annotations

from typing import Any, Protocol

import grpc

from odradek.broker.errors import BrokerError
from odradek.broker.grpc.status import from_rpc_error
from odradek.broker.peers.channels import ChannelPool
from odradek.broker.reasons import Reason
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc

FORWARD_TIMEOUT_S = 30.0


class AdminForwarder(Protocol):
    async def forward(self, address: str, method: str, request: Any) -> Any:
        """The controller's answer to the Admin ``method``; raises BrokerError."""

    async def create_topic(self, address: str, name: str, partitions: int,
                           replication_factor: int, configs: dict[str, str]) -> None:
        """Has the controller create a topic; raises BrokerError."""


class GrpcAdminForwarder:
    def __init__(self, channels: ChannelPool) -> None:
        self._channels = channels

    async def forward(self, address: str, method: str, request: Any) -> Any:
        """The controller's answer to ``method``, or the BrokerError it answered with (the
        caller's front end answers its own client with the same reason)."""
        stub = pb_grpc.AdminStub(self._channels.get(address))  # type: ignore[no-untyped-call]
        try:
            return await getattr(stub, method)(request, timeout=FORWARD_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                self._channels.drop(address)
            error = from_rpc_error(exc, unreachable=Reason.NOT_CONTROLLER)
            if error.reason == Reason.NOT_CONTROLLER and "leader" not in error.metadata:
                error = BrokerError(Reason.NOT_CONTROLLER, f"the controller at {address} "
                                    f"could not be reached ({error.message}); retry shortly")
            raise error from None

    async def create_topic(self, address: str, name: str, partitions: int,
                           replication_factor: int, configs: dict[str, str]) -> None:
        await self.forward(address, "CreateTopic", pb.CreateTopicRequest(
            name=name, partitions=partitions, replication_factor=replication_factor,
            configs=configs))
