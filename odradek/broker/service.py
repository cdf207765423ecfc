"""The gRPC front end: thin servicers that translate messages to TopicManager calls."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import grpc

from odradek.broker.errors import BrokerError, invalid_request, to_broker_error
from odradek.broker.topics import Topic, TopicManager
from odradek.storage import DEFAULTS
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc

log = logging.getLogger("odradek.broker")

DEFAULT_FETCH_MAX_BYTES = 1024 * 1024
MAX_FETCH_BYTES = 64 * 1024 * 1024
MAX_WAIT_MS = 60_000

T = TypeVar("T")
Handler = Callable[..., Awaitable[T]]


def rpc(method: Handler[T]) -> Handler[T]:
    """Turns domain errors into statuses with ErrorInfo; logs what was not expected."""

    @wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            return await method(self, request, context)
        except Exception as exc:
            error = to_broker_error(exc)
            if error is None:
                log.exception("unexpected error in %s", method.__name__)
                error = BrokerError(grpc.StatusCode.INTERNAL, "INTERNAL",
                                    f"internal error: {type(exc).__name__}: {exc}")
            await context.abort_with_status(error.to_status())
            raise AssertionError("abort_with_status returned") from exc

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


class BrokerService(pb_grpc.BrokerServicer):
    def __init__(self, topics: TopicManager, broker_id: int, host: str, port: int,
                 cluster_id: str) -> None:
        self.topics = topics
        self.broker_id = broker_id
        self.host = host
        self.port = port
        self.cluster_id = cluster_id

    @rpc
    async def Produce(self, request: pb.ProduceRequest,
                      context: grpc.aio.ServicerContext) -> pb.ProduceResponse:
        _check_partition_request(request.topic, request.partition)
        partition = self.topics.partition(request.topic, request.partition)
        info = await partition.append(request.records)
        return pb.ProduceResponse(
            base_offset=info.base_offset, last_offset=info.last_offset,
            log_append_time_ms=info.log_append_time_ms,
            log_start_offset=partition.log.log_start_offset)

    @rpc
    async def Fetch(self, request: pb.FetchRequest,
                    context: grpc.aio.ServicerContext) -> pb.FetchResponse:
        _check_partition_request(request.topic, request.partition)
        if request.max_wait_ms < 0 or request.min_bytes < 0:
            raise invalid_request("max_wait_ms and min_bytes must not be negative")
        max_bytes = _fetch_bytes(request.max_bytes)
        partition = self.topics.partition(request.topic, request.partition)
        deadline = time.monotonic() + min(request.max_wait_ms, MAX_WAIT_MS) / 1000
        while True:
            result = partition.read(request.offset, max_bytes)
            remaining = deadline - time.monotonic()
            if len(result.data) >= max(request.min_bytes, 1) or remaining <= 0:
                break
            await partition.wait_for_append(remaining)
        return pb.FetchResponse(
            records=result.data, high_watermark=partition.high_watermark,
            log_start_offset=partition.log.log_start_offset, next_offset=result.next_offset)

    async def Subscribe(self, request: pb.SubscribeRequest,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[pb.FetchResponse]:
        try:
            _check_partition_request(request.topic, request.partition)
            max_bytes = _fetch_bytes(request.max_bytes)
            partition = self.topics.partition(request.topic, request.partition)
            offset = request.offset
            while True:
                result = partition.read(offset, max_bytes)
                if result.data:
                    offset = result.next_offset
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
        partition = self.topics.partition(request.topic, request.partition)
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
        names = list(request.topics) or sorted(self.topics.topics)
        topics = [self._topic_metadata(self.topics.get(name)) for name in names]
        broker = pb.BrokerInfo(id=self.broker_id, host=self.host, port=self.port)
        return pb.MetadataResponse(cluster_id=self.cluster_id, controller_id=self.broker_id,
                                   brokers=[broker], topics=topics)

    def _topic_metadata(self, topic: Topic) -> pb.TopicMetadata:
        return pb.TopicMetadata(name=topic.name, partitions=[
            self.partition_info(p.index) for p in topic.partitions])

    def partition_info(self, index: int) -> pb.PartitionInfo:
        me = [self.broker_id]
        return pb.PartitionInfo(partition=index, leader=self.broker_id, replicas=me,
                                in_sync_replicas=me, leader_epoch=0)


class AdminService(pb_grpc.AdminServicer):
    def __init__(self, topics: TopicManager, broker: BrokerService) -> None:
        self.topics = topics
        self.broker = broker

    @rpc
    async def CreateTopic(self, request: pb.CreateTopicRequest,
                          context: grpc.aio.ServicerContext) -> pb.CreateTopicResponse:
        topic = self.topics.create(request.name, request.partitions, request.replication_factor,
                                   dict(request.configs), request.validate_only)
        if topic is None:
            return pb.CreateTopicResponse()
        return pb.CreateTopicResponse(topic=self._describe(topic))

    @rpc
    async def DeleteTopic(self, request: pb.DeleteTopicRequest,
                          context: grpc.aio.ServicerContext) -> pb.DeleteTopicResponse:
        self.topics.delete(request.name)
        return pb.DeleteTopicResponse()

    @rpc
    async def ListTopics(self, request: pb.ListTopicsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListTopicsResponse:
        return pb.ListTopicsResponse(topics=[
            pb.TopicSummary(name=t.name, partitions=len(t.partitions),
                            replication_factor=t.record.replication_factor)
            for t in sorted(self.topics.topics.values(), key=lambda t: t.name)])

    @rpc
    async def DescribeTopic(self, request: pb.DescribeTopicRequest,
                            context: grpc.aio.ServicerContext) -> pb.TopicDescription:
        return self._describe(self.topics.get(request.name))

    @rpc
    async def AlterTopicConfigs(self, request: pb.AlterTopicConfigsRequest,
                                context: grpc.aio.ServicerContext) -> pb.TopicDescription:
        unknown = [key for key in request.delete if key not in DEFAULTS]
        if unknown:
            raise invalid_request(f"cannot delete unknown config {unknown[0]!r}")
        topic = self.topics.alter_configs(request.name, dict(request.set), list(request.delete),
                                          request.validate_only)
        return self._describe(topic)

    @rpc
    async def CreatePartitions(self, request: pb.CreatePartitionsRequest,
                               context: grpc.aio.ServicerContext) -> pb.TopicDescription:
        topic = self.topics.add_partitions(request.name, request.total_count,
                                           request.validate_only)
        return self._describe(topic)

    def _describe(self, topic: Topic) -> pb.TopicDescription:
        effective = topic.config.to_dict()
        overrides = topic.record.configs
        configs = [pb.ConfigEntry(name=k, value=v, is_default=k not in overrides)
                   for k, v in sorted(effective.items())]
        partitions = [pb.PartitionState(
            info=self.broker.partition_info(p.index), log_start_offset=p.log.log_start_offset,
            high_watermark=p.high_watermark, size_bytes=p.log.size_bytes,
            segments=p.log.segment_count) for p in topic.partitions]
        return pb.TopicDescription(
            name=topic.name, topic_id=topic.record.topic_id,
            replication_factor=topic.record.replication_factor,
            partitions=partitions, configs=configs)
