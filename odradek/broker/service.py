"""The gRPC front end: thin servicers that translate messages to TopicManager calls."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import grpc

from odradek.broker import clock
from odradek.broker.auth.guard import current_access
from odradek.broker.errors import BrokerError, invalid_request, to_broker_error, unknown_topic
from odradek.broker.metrics import BrokerMetrics
from odradek.broker.topic_admin import ForwardedError, TopicAdmin
from odradek.v1 import cluster_pb2, cluster_pb2_grpc
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc

log = logging.getLogger("odradek.broker")

DEFAULT_FETCH_MAX_BYTES = 1024 * 1024
MAX_FETCH_BYTES = 64 * 1024 * 1024
MAX_WAIT_MS = 60_000

T = TypeVar("T")
Handler = Callable[..., Awaitable[T]]


def rpc(method: Handler[T]) -> Handler[T]:
    """Turns domain errors into statuses with ErrorInfo; logs what was not expected; counts
    and times the request when the servicer has metrics."""

    @wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
        metrics: BrokerMetrics | None = getattr(self, "metrics", None)
        started = time.perf_counter()
        code: str | None = None
        reason: str | None = None
        try:
            return await method(self, request, context)
        except ForwardedError as exc:
            code, reason = exc.error.code().name, "FORWARDED"
            # abort() takes a tuple of pairs, not the grpc.aio.Metadata the call returned.
            await context.abort(exc.error.code(), exc.error.details() or "",
                                tuple(exc.error.trailing_metadata() or ()))
            raise AssertionError("abort returned") from exc
        except asyncio.CancelledError:
            code = reason = "CANCELLED"
            raise
        except Exception as exc:
            error = to_broker_error(exc)
            if error is None:
                log.exception("unexpected error in %s", method.__name__)
                error = BrokerError(grpc.StatusCode.INTERNAL, "INTERNAL",
                                    f"internal error: {type(exc).__name__}: {exc}")
            code, reason = error.code.name, error.reason
            await context.abort_with_status(error.to_status())
            raise AssertionError("abort_with_status returned") from exc
        finally:
            if metrics is not None:
                metrics.observe_rpc(method.__name__, time.perf_counter() - started,
                                    code, reason)

    return wrapper


def _check_partition_request(topic: str, partition: int) -> None:
    if not topic:
        raise invalid_request("the request names no topic")
    if partition < 0:
        raise invalid_request(f"partition must not be negative, got {partition}")


def _fetch_bytes(requested: int) -> int:
    if requested < 0:
        raise invalid_request(f"max_bytes must not be negative, got {requested}")
    return min(requested or DEFAULT_FETCH_MAX_BYTES, MAX_FETCH_BYTES)


def _keep_describable(topics: Any) -> None:
    """Drops (in place) the topics the caller may not describe: to them, they do not exist."""
    access = current_access()
    visible = [t for t in topics if access.may_describe_topic(t.name)]
    del topics[:]
    topics.extend(visible)


class BrokerService(pb_grpc.BrokerServicer):
    def __init__(self, admin: TopicAdmin, metrics: BrokerMetrics | None = None) -> None:
        self.admin = admin
        self.metrics = metrics

    @rpc
    async def Produce(self, request: pb.ProduceRequest,
                      context: grpc.aio.ServicerContext) -> pb.ProduceResponse:
        _check_partition_request(request.topic, request.partition)
        if request.timeout_ms < 0:
            raise invalid_request(f"timeout_ms must not be negative, got {request.timeout_ms}")
        partition = self.admin.leader_partition(request.topic, request.partition)
        timeout_s = (request.timeout_ms or 30_000) / 1000
        info = await partition.append(request.records, quorum=request.acks != pb.ACKS_LEADER,
                                      timeout_s=timeout_s)
        if self.metrics is not None:
            self.metrics.produced(request.topic, request.records)
        return pb.ProduceResponse(
            base_offset=info.base_offset, last_offset=info.last_offset,
            log_append_time_ms=info.log_append_time_ms,
            log_start_offset=partition.log.log_start_offset,
            batch_base_offsets=info.batch_offsets)

    @rpc
    async def Fetch(self, request: pb.FetchRequest,
                    context: grpc.aio.ServicerContext) -> pb.FetchResponse:
        _check_partition_request(request.topic, request.partition)
        if request.max_wait_ms < 0 or request.min_bytes < 0:
            raise invalid_request("max_wait_ms and min_bytes must not be negative")
        max_bytes = _fetch_bytes(request.max_bytes)
        partition = self.admin.leader_partition(request.topic, request.partition)
        deadline = clock.monotonic() + min(request.max_wait_ms, MAX_WAIT_MS) / 1000
        while True:
            result = partition.read(request.offset, max_bytes)
            remaining = deadline - clock.monotonic()
            if len(result.data) >= max(request.min_bytes, 1) or remaining <= 0:
                break
            await partition.wait_for_append(remaining)
        if self.metrics is not None:
            self.metrics.fetched(request.topic, result.data)
        return pb.FetchResponse(
            records=result.data, high_watermark=partition.high_watermark,
            log_start_offset=partition.log.log_start_offset, next_offset=result.next_offset)

    async def Subscribe(self, request: pb.SubscribeRequest,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[pb.FetchResponse]:
        try:
            _check_partition_request(request.topic, request.partition)
            max_bytes = _fetch_bytes(request.max_bytes)
            partition = self.admin.leader_partition(request.topic, request.partition)
            offset = request.offset
            while True:
                result = partition.read(offset, max_bytes)
                if result.data:
                    offset = result.next_offset
                    if self.metrics is not None:
                        self.metrics.fetched(request.topic, result.data)
                    yield pb.FetchResponse(
                        records=result.data, high_watermark=partition.high_watermark,
                        log_start_offset=partition.log.log_start_offset,
                        next_offset=result.next_offset)
                else:
                    await partition.wait_for_append(1.0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = to_broker_error(exc)
            if error is None:
                log.exception("unexpected error in Subscribe")
                error = BrokerError(grpc.StatusCode.INTERNAL, "INTERNAL", f"internal error: {exc}")
            await context.abort_with_status(error.to_status())

    @rpc
    async def ListOffsets(self, request: pb.ListOffsetsRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListOffsetsResponse:
        _check_partition_request(request.topic, request.partition)
        partition = self.admin.leader_partition(request.topic, request.partition)
        if request.spec == pb.OFFSET_SPEC_EARLIEST:
            return pb.ListOffsetsResponse(found=True, offset=partition.log.log_start_offset,
                                          timestamp_ms=-1)
        if request.spec == pb.OFFSET_SPEC_LATEST:
            return pb.ListOffsetsResponse(found=True, offset=partition.high_watermark,
                                          timestamp_ms=-1)
        if request.spec == pb.OFFSET_SPEC_TIMESTAMP:
            hit = partition.log.offset_for_timestamp(request.timestamp_ms)
            if hit is None or hit[0] >= partition.high_watermark:
                return pb.ListOffsetsResponse(found=False, offset=partition.high_watermark,
                                              timestamp_ms=-1)
            return pb.ListOffsetsResponse(found=True, offset=hit[0], timestamp_ms=hit[1])
        raise invalid_request("spec must be EARLIEST, LATEST or TIMESTAMP")

    @rpc
    async def Metadata(self, request: pb.MetadataRequest,
                       context: grpc.aio.ServicerContext) -> pb.MetadataResponse:
        access = current_access()
        for name in request.topics:
            if not access.may_describe_topic(name):
                raise unknown_topic(name)  # exactly what a topic that does not exist gets
        reply = self.admin.metadata(list(request.topics))
        if not request.topics:
            _keep_describable(reply.topics)
        return reply

    @rpc
    async def InitProducerId(self, request: pb.InitProducerIdRequest,
                             context: grpc.aio.ServicerContext) -> pb.InitProducerIdResponse:
        pid, epoch = await self.admin.cluster.producer_ids.init(request.producer_name or None)
        return pb.InitProducerIdResponse(producer_id=pid, producer_epoch=epoch)


class AdminService(pb_grpc.AdminServicer):
    """Topic admin. Requests are carried out by the controller; any other broker passes
    them on to it, so clients may call any broker."""

    def __init__(self, admin: TopicAdmin, metrics: BrokerMetrics | None = None) -> None:
        self.admin = admin
        self.metrics = metrics

    @rpc
    async def CreateTopic(self, request: pb.CreateTopicRequest,
                          context: grpc.aio.ServicerContext) -> pb.CreateTopicResponse:
        if not self.admin.cluster.is_controller():
            return await self.admin.forward("CreateTopic", request)  # type: ignore[no-any-return]
        topic = await self.admin.create(request.name, request.partitions,
                                        request.replication_factor, dict(request.configs),
                                        request.validate_only)
        return pb.CreateTopicResponse(topic=topic) if topic is not None else \
            pb.CreateTopicResponse()

    @rpc
    async def DeleteTopic(self, request: pb.DeleteTopicRequest,
                          context: grpc.aio.ServicerContext) -> pb.DeleteTopicResponse:
        if not self.admin.cluster.is_controller():
            return await self.admin.forward("DeleteTopic", request)  # type: ignore[no-any-return]
        await self.admin.delete(request.name)
        return pb.DeleteTopicResponse()

    @rpc
    async def ListTopics(self, request: pb.ListTopicsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListTopicsResponse:
        reply = self.admin.list_topics(request.include_internal)
        _keep_describable(reply.topics)
        return reply

    @rpc
    async def DescribeTopic(self, request: pb.DescribeTopicRequest,
                            context: grpc.aio.ServicerContext) -> pb.TopicDescription:
        if not current_access().may_describe_topic(request.name):
            raise unknown_topic(request.name)  # exactly what a topic that does not exist gets
        return self.admin.describe(request.name)

    @rpc
    async def AlterTopicConfigs(self, request: pb.AlterTopicConfigsRequest,
                                context: grpc.aio.ServicerContext) -> pb.TopicDescription:
        if not self.admin.cluster.is_controller():
            return await self.admin.forward("AlterTopicConfigs", request)  # type: ignore[no-any-return]
        return await self.admin.alter_configs(request.name, dict(request.set),
                                              list(request.delete), request.validate_only)

    @rpc
    async def CreatePartitions(self, request: pb.CreatePartitionsRequest,
                               context: grpc.aio.ServicerContext) -> pb.TopicDescription:
        if not self.admin.cluster.is_controller():
            return await self.admin.forward("CreatePartitions", request)  # type: ignore[no-any-return]
        return await self.admin.create_partitions(request.name, request.total_count,
                                                  request.validate_only)


    @rpc
    async def ReassignPartition(self, request: pb.ReassignPartitionRequest,
                                context: grpc.aio.ServicerContext) -> pb.TopicDescription:
        if not self.admin.cluster.is_controller():
            return await self.admin.forward("ReassignPartition", request)  # type: ignore[no-any-return]
        return await self.admin.reassign_partition(request.topic, request.partition,
                                                   list(request.replicas), request.validate_only)

    @rpc
    async def DrainBroker(self, request: pb.DrainBrokerRequest,
                          context: grpc.aio.ServicerContext) -> pb.DrainBrokerResponse:
        if not self.admin.cluster.is_controller():
            return await self.admin.forward("DrainBroker", request)  # type: ignore[no-any-return]
        return await self.admin.drain_broker(request.broker_id, request.validate_only)


class ControllerService(cluster_pb2_grpc.ControllerServicer):
    def __init__(self, admin: TopicAdmin, metrics: BrokerMetrics | None = None) -> None:
        self.admin = admin
        self.metrics = metrics

    @rpc
    async def Propose(self, request: cluster_pb2.ProposeRequest,
                      context: grpc.aio.ServicerContext) -> cluster_pb2.ProposeResponse:
        offset = await self.admin.propose_as_controller(request.command)
        return cluster_pb2.ProposeResponse(offset=offset)

    @rpc
    async def FetchMetadata(self, request: cluster_pb2.FetchMetadataRequest,
                            context: grpc.aio.ServicerContext) -> cluster_pb2.FetchMetadataResponse:
        cluster = self.admin.cluster
        wait = min(max(request.max_wait_ms, 0), MAX_WAIT_MS) / 1000
        data, next_offset, snapshot = await cluster.read_metadata(request.offset, wait)
        controller = cluster.controller_id
        return cluster_pb2.FetchMetadataResponse(
            records=data, next_offset=next_offset, snapshot=snapshot,
            controller_id=-1 if controller is None else controller)
