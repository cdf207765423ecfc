"""Admin requests a broker passes on: to the controller when it is not the controller,
and preferred-leader elections to the partitions' leaders."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import grpc

from odradek.broker.elections import ElectionResult, Elections, Outcome, Partition
from odradek.broker.errors import BrokerError
from odradek.broker.grpc.status import from_rpc_error
from odradek.broker.peers.channels import ChannelPool
from odradek.broker.reasons import Reason, reason_of
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from odradek.broker.cluster import ClusterNode

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

    async def elect(self, address: str | None, partitions: list[Partition],
                    timeout_s: float) -> list[ElectionResult]:
        """Has the broker at address (their leader) elect the partitions' preferred
        leaders; it answers for them and passes nothing on."""
        if address is None:
            raise BrokerError(Reason.LEADER_NOT_AVAILABLE,
                              "the partition's leader has no known address; retry shortly")
        reply = await self.forward(address, "ElectLeaders", pb.ElectLeadersRequest(
            partitions=[pb.PartitionRef(topic=t, partition=i) for t, i in partitions],
            forwarded=True, timeout_ms=max(1, int(timeout_s * 1000))))
        return [election_from_pb(r) for r in reply.results]


async def elect_leaders(cluster: ClusterNode, forwarder: GrpcAdminForwarder,
                        wanted: list[Partition] | None, timeout_s: float,
                        forwarded: bool = False) -> list[ElectionResult]:
    """Elections for a front end: partitions led elsewhere go to their leaders, unless
    the request was itself passed on."""
    async def forward(broker: int, tps: list[Partition], t: float) -> list[ElectionResult]:
        return await forwarder.elect(cluster.address_of(broker), tps, t)

    return await Elections(cluster).elect(wanted, None if forwarded else forward, timeout_s)


_OUTCOMES = {pb.ELECTION_OUTCOME_ELECTED: Outcome.ELECTED,
             pb.ELECTION_OUTCOME_ALREADY_PREFERRED: Outcome.ALREADY_PREFERRED}
OUTCOME_PB = {v: k for k, v in _OUTCOMES.items()} | {Outcome.FAILED: pb.ELECTION_OUTCOME_FAILED}


def election_from_pb(r: pb.ElectionResult) -> ElectionResult:
    outcome = _OUTCOMES.get(r.outcome, Outcome.FAILED)
    error = None if outcome != Outcome.FAILED else BrokerError(
        reason_of(r.error_reason), r.error_message or "the election failed")
    return ElectionResult(r.topic, r.partition, outcome, r.leader, error)


def election_pb(r: ElectionResult) -> pb.ElectionResult:
    return pb.ElectionResult(topic=r.topic, partition=r.partition, outcome=OUTCOME_PB[r.outcome],
                             leader=r.leader,
                             error_reason=r.error.reason if r.error is not None else "",
                             error_message=r.error.message if r.error is not None else "")
