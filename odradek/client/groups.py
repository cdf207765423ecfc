"""Reaching a group's coordinator: FindCoordinator on any broker, then calls to the
coordinator, following NOT_COORDINATOR answers when the coordinator moves."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import grpc

from odradek.client.connection import Cluster
from odradek.client.errors import OdradekError, UnavailableError, from_rpc_error
from odradek.v1 import groups_pb2 as gpb
from odradek.v1 import groups_pb2_grpc as gpb_grpc

T = TypeVar("T")
OFFSETS_TOPIC = "__consumer_offsets"

# Reasons after which the coordinator must be looked up again.
REDISCOVER = frozenset({"NOT_COORDINATOR", "COORDINATOR_NOT_AVAILABLE", "UNAVAILABLE",
                        "DEADLINE_EXCEEDED"})


def topic_partitions(tps: Iterable[tuple[str, int]]) -> list[gpb.TopicPartitions]:
    by_topic: dict[str, list[int]] = {}
    for topic, p in sorted(tps):
        by_topic.setdefault(topic, []).append(p)
    return [gpb.TopicPartitions(topic=t, partitions=ps) for t, ps in by_topic.items()]


class GroupClient:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._coordinators: dict[str, str] = {}

    def stub(self, address: str) -> gpb_grpc.GroupsStub:
        return gpb_grpc.GroupsStub(self.cluster.channel(address))  # type: ignore[no-untyped-call]

    async def coordinator(self, group_id: str, refresh: bool = False) -> str:
        """host:port of the group's coordinator."""
        address = self._coordinators.get(group_id)
        if address is not None and not refresh:
            return address
        request = gpb.FindCoordinatorRequest(group_id=group_id)
        timeout = self.cluster.request_timeout

        async def call(broker: str) -> gpb.FindCoordinatorResponse:
            reply: gpb.FindCoordinatorResponse = await self.stub(broker).FindCoordinator(
                request, timeout=timeout)
            return reply

        reply = await self.cluster.any_broker(call)
        self._coordinators[group_id] = reply.address
        return str(reply.address)

    def forget(self, group_id: str, err: OdradekError) -> None:
        """After a failed call: use the coordinator the broker named, else look it up."""
        hint = err.metadata.get("coordinator")
        if hint:
            self._coordinators[group_id] = hint
        else:
            self._coordinators.pop(group_id, None)

    async def call(self, group_id: str, fn: Callable[[gpb_grpc.GroupsStub], Awaitable[T]],
                   timeout: float | None = None) -> T:
        """fn(stub of the coordinator), retried while the coordinator moves or loads."""
        deadline = time.monotonic() + (self.cluster.request_timeout if timeout is None
                                       else timeout)
        attempt = 0
        while True:
            try:
                return await fn(self.stub(await self.coordinator(group_id)))
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
            except OdradekError as exc:
                err = exc
            if not err.retriable:
                raise err
            if err.reason in REDISCOVER:
                self.forget(group_id, err)
            attempt += 1
            delay = min(0.05 * 2 ** attempt, 1.0) * random.uniform(0.8, 1.2)
            if time.monotonic() + delay > deadline:
                raise err
            await asyncio.sleep(delay)

    # ------------------------------------------------------------------ offsets
    async def commit(self, group_id: str, member_id: str, generation: int,
                     offsets: dict[tuple[str, int], int]) -> None:
        request = gpb.CommitOffsetsRequest(
            group_id=group_id, member_id=member_id, generation=generation,
            offsets=[gpb.OffsetCommit(topic=t, partition=p, offset=o)
                     for (t, p), o in sorted(offsets.items())])
        timeout = self.cluster.request_timeout

        async def fn(stub: gpb_grpc.GroupsStub) -> None:
            await stub.CommitOffsets(request, timeout=timeout)

        await self.call(group_id, fn)

    async def committed(self, group_id: str, tps: Iterable[tuple[str, int]] = (),
                        ) -> dict[tuple[str, int], int]:
        """Committed offsets (those without one are left out); all of them if tps is empty."""
        request = gpb.FetchOffsetsRequest(group_id=group_id, partitions=topic_partitions(tps))
        timeout = self.cluster.request_timeout

        async def fn(stub: gpb_grpc.GroupsStub) -> gpb.FetchOffsetsResponse:
            reply: gpb.FetchOffsetsResponse = await stub.FetchOffsets(request, timeout=timeout)
            return reply

        reply = await self.call(group_id, fn)
        return {(o.topic, o.partition): o.offset for o in reply.offsets if o.offset >= 0}

    # -------------------------------------------------------------------- admin
    async def list_groups(self) -> list[gpb.GroupSummary]:
        """Every group of the cluster: each leader of a partition of __consumer_offsets
        lists the groups it coordinates. Retried while leaders move; an unreachable
        coordinator is an error rather than a silently shorter list."""
        timeout = self.cluster.request_timeout
        deadline = time.monotonic() + timeout
        while True:
            meta = await self.cluster.refresh()
            leaders = {p.leader for t in meta.topics if t.name == OFFSETS_TOPIC
                       for p in t.partitions}
            addresses = sorted({self.cluster.brokers.get(b, "") for b in leaders})
            replies = await asyncio.gather(*(
                self.stub(a).ListGroups(gpb.ListGroupsRequest(), timeout=timeout)
                for a in addresses if a), return_exceptions=True)
            errors = [from_rpc_error(r) if isinstance(r, grpc.RpcError) else r
                      for r in replies if isinstance(r, BaseException)]
            if "" not in addresses and not errors:
                break
            retriable = all(isinstance(e, OdradekError) and e.retriable for e in errors)
            if not retriable or time.monotonic() + 0.5 > deadline:
                if errors:
                    raise errors[0]
                raise UnavailableError("a partition of __consumer_offsets has no leader")
            await asyncio.sleep(0.5)
        groups: dict[str, gpb.GroupSummary] = {}
        for reply in replies:
            assert isinstance(reply, gpb.ListGroupsResponse)
            for g in reply.groups:
                groups[g.group_id] = g
        return [groups[k] for k in sorted(groups)]

    async def describe(self, group_id: str) -> gpb.GroupDescription:
        timeout = self.cluster.request_timeout

        async def fn(stub: gpb_grpc.GroupsStub) -> gpb.GroupDescription:
            reply: gpb.GroupDescription = await stub.DescribeGroup(
                gpb.DescribeGroupRequest(group_id=group_id), timeout=timeout)
            return reply

        return await self.call(group_id, fn)

    async def delete(self, group_id: str) -> None:
        timeout = self.cluster.request_timeout

        async def fn(stub: gpb_grpc.GroupsStub) -> None:
            await stub.DeleteGroup(gpb.DeleteGroupRequest(group_id=group_id), timeout=timeout)

        await self.call(group_id, fn)

    async def delete_offsets(self, request: gpb.DeleteOffsetsRequest,
                             ) -> list[gpb.CommittedOffset]:
        timeout = self.cluster.request_timeout

        async def fn(stub: gpb_grpc.GroupsStub) -> gpb.DeleteOffsetsResponse:
            reply: gpb.DeleteOffsetsResponse = await stub.DeleteOffsets(request, timeout=timeout)
            return reply

        return list((await self.call(request.group_id, fn)).deleted)

    async def reset(self, request: gpb.ResetOffsetsRequest) -> list[gpb.OffsetChange]:
        timeout = self.cluster.request_timeout

        async def fn(stub: gpb_grpc.GroupsStub) -> gpb.ResetOffsetsResponse:
            reply: gpb.ResetOffsetsResponse = await stub.ResetOffsets(request, timeout=timeout)
            return reply

        return list((await self.call(request.group_id, fn)).changes)
