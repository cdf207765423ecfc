"""The gRPC front end of consumer groups: thin servicers over GroupCoordinator."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable

import grpc

from odradek.broker.auth.access import Access, current_access
from odradek.broker.errors import BrokerError, Reason, invalid_request, to_broker_error
from odradek.broker.groups.assignors import TP
from odradek.broker.groups.channel import MemberChannel
from odradek.broker.groups.coordinator import GroupCoordinator
from odradek.broker.groups.state import JoinRequest
from odradek.broker.groups.types import (
    Assignment,
    CommittedOffset,
    MemberMessage,
    OffsetCommit,
    ResetRequest,
    ResetTo,
)
from odradek.broker.grpc.broker_service import rpc
from odradek.broker.grpc.status import to_status
from odradek.broker.listeners import Addresses
from odradek.broker.logs import clip
from odradek.broker.metrics.broker import BrokerMetrics
from odradek.v1 import groups_pb2 as gpb
from odradek.v1 import groups_pb2_grpc as gpb_grpc

log = logging.getLogger("odradek.broker.groups")


# An open stream that says nothing holds a slot on the broker: its first message must come
# within this long (a client joins at once).
FIRST_MESSAGE_TIMEOUT_S = 10.0


def topic_partitions(tps: set[TP] | frozenset[TP] | list[TP]) -> list[gpb.TopicPartitions]:
    by_topic: dict[str, list[int]] = {}
    for topic, p in sorted(tps):
        by_topic.setdefault(topic, []).append(p)
    return [gpb.TopicPartitions(topic=t, partitions=ps) for t, ps in by_topic.items()]


def _tps(items: list[gpb.TopicPartitions]) -> list[TP]:
    return [(tp.topic, p) for tp in items for p in tp.partitions]


def join_request(join: gpb.JoinGroup, topics: frozenset[str]) -> JoinRequest:
    """Zero timeouts and an empty strategy take the defaults."""
    return JoinRequest(join.member_id, join.instance_id, join.client_id, topics,
                       join.session_timeout_ms or 10_000, join.max_poll_interval_ms or 300_000,
                       join.strategy or "sticky")


def describable(access: Access, topics: Iterable[str]) -> tuple[frozenset[str], list[str]]:
    """(the topics the caller may describe, the others): a topic it may not describe is
    neither assigned nor revealed, as on the Kafka listener (groups/consumer_protocol.py).
    Nothing at all left is refused, the same way for missing and hidden topics."""
    wanted = sorted(set(topics))
    allowed = frozenset(t for t in wanted if access.may_describe_topic(t))
    refused = [t for t in wanted if t not in allowed]
    if refused and not allowed:
        raise BrokerError(Reason.TOPIC_AUTHORIZATION_FAILED,
                          f"{access.principal} may describe none of the topics subscribed "
                          f"to: {', '.join(clip(t) for t in refused[:10])}",
                          {"principal": access.principal, "resource_type": "topic",
                           "operation": "describe"})
    return allowed, refused


def member_response(message: MemberMessage, refused: list[str]) -> gpb.MemberResponse:
    if isinstance(message, Assignment):
        return gpb.MemberResponse(assignment=gpb.Assignment(
            generation=message.generation, partitions=topic_partitions(message.partitions)))
    return gpb.MemberResponse(joined=gpb.Joined(
        member_id=message.member_id, generation=message.generation,
        heartbeat_interval_ms=message.heartbeat_interval_ms, refused_topics=refused))


_RESET_TO = {"to_earliest": ResetTo.EARLIEST, "to_latest": ResetTo.LATEST,
             "to_timestamp_ms": ResetTo.TIMESTAMP, "to_offset": ResetTo.OFFSET,
             "shift_by": ResetTo.SHIFT}


def reset_request(request: gpb.ResetOffsetsRequest) -> ResetRequest:
    spec = request.WhichOneof("spec")
    if spec is None:
        raise invalid_request("say where to reset to: to_earliest, to_latest, "
                              "to_timestamp_ms, to_offset or shift_by")
    value = getattr(request, spec) if spec in ("to_timestamp_ms", "to_offset", "shift_by") else 0
    return ResetRequest(request.group_id, _RESET_TO[spec], int(value),
                        tuple((p.topic, tuple(p.partitions)) for p in request.partitions),
                        request.dry_run)


def committed_pb(o: CommittedOffset) -> gpb.CommittedOffset:
    return gpb.CommittedOffset(topic=o.topic, partition=o.partition, offset=o.offset,
                               metadata=o.metadata, commit_timestamp_ms=o.commit_timestamp_ms)


class GroupsService(gpb_grpc.GroupsServicer):
    def __init__(self, coordinator: GroupCoordinator,
                 metrics: BrokerMetrics | None = None,
                 addresses: Addresses | None = None) -> None:
        self.coordinator = coordinator
        self.metrics = metrics
        self.addresses = addresses

    @rpc
    async def FindCoordinator(self, request: gpb.FindCoordinatorRequest,
                              context: grpc.aio.ServicerContext) -> gpb.FindCoordinatorResponse:
        found = await self.coordinator.find_coordinator(request.group_id)
        address: str | None = found.address
        if self.addresses is not None:
            address = self.addresses.translate(found.address, found.broker_id)
            if address is None:
                raise BrokerError(Reason.COORDINATOR_NOT_AVAILABLE,
                                  f"the coordinator of group {request.group_id!r}, broker "
                                  f"{found.broker_id}, has no listener "
                                  f"{self.addresses.name!r}")
        return gpb.FindCoordinatorResponse(broker_id=found.broker_id, address=address,
                                           partition=found.partition)

    async def Membership(self, request_iterator: AsyncIterator[gpb.MemberRequest],
                         context: grpc.aio.ServicerContext) -> AsyncIterator[gpb.MemberResponse]:
        channel: MemberChannel | None = None
        reader: asyncio.Task[None] | None = None
        try:
            try:
                first = await asyncio.wait_for(anext(aiter(request_iterator), None),
                                               FIRST_MESSAGE_TIMEOUT_S)
            except TimeoutError:
                raise invalid_request(
                    f"a Membership stream must start with a join within "
                    f"{FIRST_MESSAGE_TIMEOUT_S:.0f}s") from None
            if first is None or first.WhichOneof("kind") != "join":
                raise invalid_request("a Membership stream starts with a join")
            access = current_access()
            access.require("group", first.join.group_id, "read")
            topics, refused = describable(access, first.join.topics)
            channel = await self.coordinator.join(first.join.group_id,
                                                  join_request(first.join, topics))
            reader = asyncio.create_task(self._read(request_iterator, channel, access))
            while True:
                item = await channel.next()
                if item is None:
                    return
                if isinstance(item, BrokerError):
                    raise item
                yield member_response(item, refused)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = to_broker_error(exc)
            if error is None:
                log.exception("unexpected error in Membership")
                error = BrokerError(Reason.INTERNAL, f"internal error: {exc}")
            if self.addresses is not None:
                error = self.addresses.error(error)
            await context.abort_with_status(to_status(error))
        finally:
            if reader is not None:
                reader.cancel()
            if channel is not None:
                self.coordinator.stream_closed(channel)

    async def _read(self, requests: AsyncIterator[gpb.MemberRequest],
                    channel: MemberChannel, access: Access) -> None:
        coordinator = self.coordinator
        try:
            async for request in requests:
                kind = request.WhichOneof("kind")
                if kind == "heartbeat":
                    coordinator.heartbeat(channel, request.heartbeat.ms_since_poll)
                elif kind == "ack":
                    await coordinator.acknowledge(channel, request.ack.generation)
                elif kind == "subscription":
                    # Hidden topics are left out here too (no answer to say so: the
                    # client's pattern subscriptions list describable topics only).
                    topics, _ = describable(access, request.subscription.topics)
                    await coordinator.update_subscription(channel, list(topics))
                elif kind == "leave":
                    await coordinator.leave(channel)
                    return
                else:
                    raise invalid_request(f"unexpected {kind or 'empty'} message after join")
            channel.close()  # the member closed its side without leaving
        except asyncio.CancelledError:
            raise
        except BrokerError as exc:
            channel.close(exc)
        except Exception as exc:  # the stream broke: the member's session timeout runs
            log.debug("membership stream of %s ended: %s", clip(channel.member_id), clip(exc))
            channel.close()

    @rpc
    async def CommitOffsets(self, request: gpb.CommitOffsetsRequest,
                            context: grpc.aio.ServicerContext) -> gpb.CommitOffsetsResponse:
        await self.coordinator.commit(
            request.group_id, request.member_id, request.generation,
            [OffsetCommit(o.topic, o.partition, o.offset, o.metadata) for o in request.offsets])
        return gpb.CommitOffsetsResponse()

    @rpc
    async def FetchOffsets(self, request: gpb.FetchOffsetsRequest,
                           context: grpc.aio.ServicerContext) -> gpb.FetchOffsetsResponse:
        access = current_access()
        return gpb.FetchOffsetsResponse(offsets=[
            committed_pb(o)
            for o in await self.coordinator.fetch(request.group_id, _tps(list(request.partitions)))
            if access.may_describe_topic(o.topic)])

    @rpc
    async def ListGroups(self, request: gpb.ListGroupsRequest,
                         context: grpc.aio.ServicerContext) -> gpb.ListGroupsResponse:
        me = self.coordinator.cluster.id
        access = current_access()
        return gpb.ListGroupsResponse(groups=[
            gpb.GroupSummary(group_id=g.group_id, state=g.state, members=len(g.members),
                             coordinator_id=me)
            for g in sorted(self.coordinator.groups(), key=lambda g: g.group_id)
            if access.allowed("group", g.group_id, "describe")])

    @rpc
    async def DescribeGroup(self, request: gpb.DescribeGroupRequest,
                            context: grpc.aio.ServicerContext) -> gpb.GroupDescription:
        group = self.coordinator.describe_group(request.group_id)
        # Only what the caller may describe: other topics' offsets, lag and assignment
        # are left out, as if the group did not read them.
        seen = current_access().may_describe_topic

        def visible(tps: set[tuple[str, int]]) -> list[gpb.TopicPartitions]:
            return topic_partitions({tp for tp in tps if seen(tp[0])})

        members = [gpb.MemberDescription(
            member_id=m.member_id, instance_id=m.instance_id, client_id=m.client_id,
            topics=sorted(t for t in m.topics if seen(t)), assigned=visible(m.assigned),
            connected=m.connected, revoking=visible(m.revoking))
            for _, m in sorted(group.members.items())]
        lag = [gpb.PartitionLag(topic=p.topic, partition=p.partition,
                                committed_offset=p.committed_offset,
                                log_end_offset=p.log_end_offset, lag=p.lag,
                                member_id=p.member_id)
               for p in await self.coordinator.lag(group) if seen(p.topic)]
        return gpb.GroupDescription(
            group_id=group.group_id, state=group.state, generation=group.generation,
            strategy=group.strategy, coordinator_id=self.coordinator.cluster.id,
            members=members, partitions=lag)

    @rpc
    async def DeleteGroup(self, request: gpb.DeleteGroupRequest,
                          context: grpc.aio.ServicerContext) -> gpb.DeleteGroupResponse:
        await self.coordinator.delete(request.group_id)
        return gpb.DeleteGroupResponse()

    @rpc
    async def DeleteOffsets(self, request: gpb.DeleteOffsetsRequest,
                            context: grpc.aio.ServicerContext) -> gpb.DeleteOffsetsResponse:
        deleted = await self.coordinator.delete_offsets(request.group_id, tuple(
            (p.topic, tuple(p.partitions)) for p in request.partitions))
        return gpb.DeleteOffsetsResponse(deleted=[committed_pb(o) for o in deleted])

    @rpc
    async def ResetOffsets(self, request: gpb.ResetOffsetsRequest,
                           context: grpc.aio.ServicerContext) -> gpb.ResetOffsetsResponse:
        access = current_access()

        def may_read(topics: list[str]) -> None:
            for topic in topics:
                access.require("topic", topic, "read")

        changes = await self.coordinator.reset(reset_request(request), may_read)
        return gpb.ResetOffsetsResponse(changes=[
            gpb.OffsetChange(topic=c.topic, partition=c.partition, offset=c.offset,
                             previous=c.previous) for c in changes])
