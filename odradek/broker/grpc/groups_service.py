"""The gRPC front end of consumer groups: thin servicers over GroupCoordinator."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from odradek.broker.auth.guard import current_access
from odradek.broker.errors import BrokerError, Reason, invalid_request, to_broker_error
from odradek.broker.groups.coordinator import GroupCoordinator, MemberChannel, topic_partitions
from odradek.broker.grpc.broker_service import rpc
from odradek.broker.grpc.status import to_status
from odradek.broker.metrics.broker import BrokerMetrics
from odradek.v1 import groups_pb2 as gpb
from odradek.v1 import groups_pb2_grpc as gpb_grpc

log = logging.getLogger("odradek.broker.groups")


# An open stream that says nothing holds a slot on the broker: its first message must come
# within this long (a client joins at once).
FIRST_MESSAGE_TIMEOUT_S = 10.0


class GroupsService(gpb_grpc.GroupsServicer):
    def __init__(self, coordinator: GroupCoordinator,
                 metrics: BrokerMetrics | None = None) -> None:
        self.coordinator = coordinator
        self.metrics = metrics

    @rpc
    async def FindCoordinator(self, request: gpb.FindCoordinatorRequest,
                              context: grpc.aio.ServicerContext) -> gpb.FindCoordinatorResponse:
        return await self.coordinator.find_coordinator(request.group_id)

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
            current_access().require("group", first.join.group_id, "read")
            channel = await self.coordinator.join(first.join)
            reader = asyncio.create_task(self._read(request_iterator, channel))
            while True:
                item = await channel.next()
                if item is None:
                    return
                if isinstance(item, BrokerError):
                    raise item
                yield item
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = to_broker_error(exc)
            if error is None:
                log.exception("unexpected error in Membership")
                error = BrokerError(Reason.INTERNAL, f"internal error: {exc}")
            await context.abort_with_status(to_status(error))
        finally:
            if reader is not None:
                reader.cancel()
            if channel is not None:
                self.coordinator.stream_closed(channel)

    async def _read(self, requests: AsyncIterator[gpb.MemberRequest],
                    channel: MemberChannel) -> None:
        coordinator = self.coordinator
        try:
            async for request in requests:
                kind = request.WhichOneof("kind")
                if kind == "heartbeat":
                    coordinator.heartbeat(channel, request.heartbeat.ms_since_poll)
                elif kind == "ack":
                    await coordinator.acknowledge(channel, request.ack.generation)
                elif kind == "subscription":
                    await coordinator.update_subscription(channel,
                                                          list(request.subscription.topics))
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
            log.debug("membership stream of %s ended: %s", channel.member_id, exc)
            channel.close()

    @rpc
    async def CommitOffsets(self, request: gpb.CommitOffsetsRequest,
                            context: grpc.aio.ServicerContext) -> gpb.CommitOffsetsResponse:
        await self.coordinator.commit(request)
        return gpb.CommitOffsetsResponse()

    @rpc
    async def FetchOffsets(self, request: gpb.FetchOffsetsRequest,
                           context: grpc.aio.ServicerContext) -> gpb.FetchOffsetsResponse:
        access = current_access()
        return gpb.FetchOffsetsResponse(offsets=[
            o for o in await self.coordinator.fetch(request) if access.may_describe_topic(o.topic)])

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
        lag = [p for p in await self.coordinator.lag(group) if seen(p.topic)]
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
    async def ResetOffsets(self, request: gpb.ResetOffsetsRequest,
                           context: grpc.aio.ServicerContext) -> gpb.ResetOffsetsResponse:
        access = current_access()

        def may_read(topics: list[str]) -> None:
            for topic in topics:
                access.require("topic", topic, "read")

        return gpb.ResetOffsetsResponse(changes=await self.coordinator.reset(request, may_read))
