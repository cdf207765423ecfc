"""The gRPC front end: thin servicers that translate messages to TopicManager calls."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import replace
from functools import wraps
from typing import Any, TypeVar

import grpc

from odradek.broker.auth.access import current_access
from odradek.broker.errors import (
    BrokerError,
    Reason,
    invalid_request,
    to_broker_error,
    unknown_topic,
)
from odradek.broker.grpc import topics_codec as codec
from odradek.broker.grpc.status import status_code, to_status
from odradek.broker.listeners import Addresses
from odradek.broker.metrics.broker import BrokerMetrics
from odradek.broker.names import refuse_internal
from odradek.broker.peers.forward import GrpcAdminForwarder, elect_leaders, election_pb
from odradek.broker.topic_admin import TopicAdmin
from odradek.broker.topics import reads
from odradek.broker.topics.reads import MAX_WAIT_MS, check_partition_request
from odradek.records.batch import parse_header
from odradek.v1 import cluster_pb2, cluster_pb2_grpc
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc

log = logging.getLogger("odradek.broker")


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
        observed = False

        def observe() -> None:
            nonlocal observed
            if metrics is not None and not observed:
                metrics.observe_rpc(method.__name__, time.perf_counter() - started,
                                    code, reason)
            observed = True

        try:
            return await method(self, request, context)
        except asyncio.CancelledError:
            code = reason = "CANCELLED"
            raise
        except Exception as exc:
            error = to_broker_error(exc)
            if error is None:
                log.exception("unexpected error in %s", method.__name__)
                error = BrokerError(Reason.INTERNAL,
                                    f"internal error: {type(exc).__name__}: {exc}")
            code, reason = status_code(error).name, error.reason
            addresses: Addresses | None = getattr(self, "addresses", None)
            if addresses is not None:  # a further listener: hints name its addresses
                error = addresses.error(error)
            # Counted before the status leaves: abort sends it at once, and a client that
            # has its error and then scrapes the broker must find it counted.
            observe()
            await context.abort_with_status(to_status(error))
            raise AssertionError("abort_with_status returned") from exc
        finally:
            observe()

    return wrapper


_OFFSET_SPECS = {pb.OFFSET_SPEC_EARLIEST: reads.OffsetSpec.EARLIEST,
                 pb.OFFSET_SPEC_LATEST: reads.OffsetSpec.LATEST,
                 pb.OFFSET_SPEC_TIMESTAMP: reads.OffsetSpec.TIMESTAMP}


def _fetch_response(result: reads.FetchResult) -> pb.FetchResponse:
    return pb.FetchResponse(records=result.records, high_watermark=result.high_watermark,
                            log_start_offset=result.log_start_offset,
                            next_offset=result.next_offset)


def _describable(topics: Iterable[T]) -> list[T]:
    """The topics the caller may describe: to them, the others do not exist."""
    access = current_access()
    return [t for t in topics if access.may_describe_topic(t.name)]  # type: ignore[attr-defined]


class BrokerService(pb_grpc.BrokerServicer):
    def __init__(self, admin: TopicAdmin, metrics: BrokerMetrics | None = None,
                 addresses: Addresses | None = None) -> None:
        self.addresses = addresses
        self.admin = admin
        self.metrics = metrics

    @rpc
    async def Produce(self, request: pb.ProduceRequest,
                      context: grpc.aio.ServicerContext) -> pb.ProduceResponse:
        check_partition_request(request.topic, request.partition)
        refuse_internal(request.topic, "produce to")
        if request.timeout_ms < 0:
            raise invalid_request(f"timeout_ms must not be negative, got {request.timeout_ms}")
        partition = self.admin.leader_partition(request.topic, request.partition)
        timeout_s = (request.timeout_ms or 30_000) / 1000
        info = await partition.append(request.records, quorum=request.acks != pb.ACKS_LEADER,
                                      timeout_s=timeout_s)
        if self.metrics is not None:
            self.metrics.produced(request.topic, request.records)
        # A named producer's writes keep its name from expiring (the batches of one
        # request are one producer's; the append has validated the header).
        self.admin.cluster.producer_ids.note_write(parse_header(request.records).producer_id)
        return pb.ProduceResponse(
            base_offset=info.base_offset, last_offset=info.last_offset,
            log_append_time_ms=info.log_append_time_ms,
            log_start_offset=partition.log.log_start_offset,
            batch_base_offsets=info.batch_offsets)

    @rpc
    async def Fetch(self, request: pb.FetchRequest,
                    context: grpc.aio.ServicerContext) -> pb.FetchResponse:
        check_partition_request(request.topic, request.partition)
        partition = self.admin.leader_partition(request.topic, request.partition)
        result = await reads.fetch(partition, request.offset, request.max_bytes,
                                   request.max_wait_ms, request.min_bytes)
        if self.metrics is not None:
            self.metrics.fetched(request.topic, result.records)
        return _fetch_response(result)

    async def Subscribe(self, request: pb.SubscribeRequest,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[pb.FetchResponse]:
        try:
            check_partition_request(request.topic, request.partition)
            partition = self.admin.leader_partition(request.topic, request.partition)
            async for result in reads.subscribe(partition, request.offset, request.max_bytes):
                if self.metrics is not None:
                    self.metrics.fetched(request.topic, result.records)
                yield _fetch_response(result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = to_broker_error(exc)
            if error is None:
                log.exception("unexpected error in Subscribe")
                error = BrokerError(Reason.INTERNAL, f"internal error: {exc}")
            await context.abort_with_status(to_status(error))

    @rpc
    async def ListOffsets(self, request: pb.ListOffsetsRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListOffsetsResponse:
        check_partition_request(request.topic, request.partition)
        spec = _OFFSET_SPECS.get(request.spec)
        if spec is None:
            raise invalid_request("spec must be EARLIEST, LATEST or TIMESTAMP")
        partition = self.admin.leader_partition(request.topic, request.partition)
        answer = reads.list_offsets(partition, spec, request.timestamp_ms)
        return pb.ListOffsetsResponse(found=answer.found, offset=answer.offset,
                                      timestamp_ms=answer.timestamp_ms)

    @rpc
    async def Metadata(self, request: pb.MetadataRequest,
                       context: grpc.aio.ServicerContext) -> pb.MetadataResponse:
        access = current_access()
        for name in request.topics:
            if not access.may_describe_topic(name):
                raise unknown_topic(name)  # exactly what a topic that does not exist gets
        view = self.admin.metadata(list(request.topics))
        if not request.topics:
            view = replace(view, topics=tuple(_describable(view.topics)))
        return codec.metadata(view, self.addresses)

    @rpc
    async def InitProducerId(self, request: pb.InitProducerIdRequest,
                             context: grpc.aio.ServicerContext) -> pb.InitProducerIdResponse:
        resume = (request.producer_id, request.producer_epoch) if request.resume else None
        pid, epoch = await self.admin.cluster.producer_ids.init(request.producer_name or None,
                                                                resume)
        return pb.InitProducerIdResponse(producer_id=pid, producer_epoch=epoch)


class AdminService(pb_grpc.AdminServicer):
    """Topic admin. Requests are carried out by the controller; any other broker passes
    them on to it, so clients may call any broker."""

    def __init__(self, admin: TopicAdmin, metrics: BrokerMetrics | None = None,
                 addresses: Addresses | None = None) -> None:
        self.addresses = addresses
        self.admin = admin
        self.metrics = metrics
        self.forwarder = GrpcAdminForwarder(admin.cluster.channels)

    async def forward(self, method: str, request: Any) -> Any:
        return await self.forwarder.forward(self.admin.controller_address(), method, request)

    @rpc
    async def CreateTopic(self, request: pb.CreateTopicRequest,
                          context: grpc.aio.ServicerContext) -> pb.CreateTopicResponse:
        if not self.admin.cluster.is_controller():
            return await self.forward("CreateTopic", request)  # type: ignore[no-any-return]
        topic = await self.admin.create(request.name, request.partitions,
                                        request.replication_factor, dict(request.configs),
                                        request.validate_only)
        return pb.CreateTopicResponse(topic=codec.topic_description(topic)) \
            if topic is not None else pb.CreateTopicResponse()

    @rpc
    async def DeleteTopic(self, request: pb.DeleteTopicRequest,
                          context: grpc.aio.ServicerContext) -> pb.DeleteTopicResponse:
        if not self.admin.cluster.is_controller():
            return await self.forward("DeleteTopic", request)  # type: ignore[no-any-return]
        await self.admin.delete(request.name)
        return pb.DeleteTopicResponse()

    @rpc
    async def DeleteRecords(self, request: pb.DeleteRecordsRequest,
                            context: grpc.aio.ServicerContext) -> pb.DeleteRecordsResponse:
        check_partition_request(request.topic, request.partition)
        if request.timeout_ms < 0:
            raise invalid_request(f"timeout_ms must not be negative, got {request.timeout_ms}")
        low = await self.admin.delete_records(request.topic, request.partition,
                                              request.before_offset,
                                              (request.timeout_ms or 30_000) / 1000)
        return pb.DeleteRecordsResponse(low_watermark=low)

    @rpc
    async def ElectLeaders(self, request: pb.ElectLeadersRequest,
                           context: grpc.aio.ServicerContext) -> pb.ElectLeadersResponse:
        wanted = [(p.topic, p.partition) for p in request.partitions]
        for topic, index in wanted:
            check_partition_request(topic, index)
        if request.timeout_ms < 0:
            raise invalid_request(f"timeout_ms must not be negative, got {request.timeout_ms}")
        results = await elect_leaders(self.admin.cluster, self.forwarder, wanted or None,
                                      (request.timeout_ms or 10_000) / 1000,
                                      request.forwarded)
        return pb.ElectLeadersResponse(results=[election_pb(r) for r in results])

    @rpc
    async def DescribeBrokerConfigs(
        self, request: pb.DescribeBrokerConfigsRequest, context: grpc.aio.ServicerContext,
    ) -> pb.DescribeBrokerConfigsResponse:
        return pb.DescribeBrokerConfigsResponse(
            broker_id=self.admin.cluster.id,
            configs=[codec.broker_config(c) for c in self.admin.described_broker_configs()])

    @rpc
    async def AlterClusterConfigs(self, request: pb.AlterClusterConfigsRequest,
                                  context: grpc.aio.ServicerContext) -> pb.ClusterConfigs:
        if not self.admin.cluster.is_controller():
            return await self.forward("AlterClusterConfigs", request)  # type: ignore[no-any-return]
        return pb.ClusterConfigs(configs=await self.admin.alter_cluster_configs(
            dict(request.set), list(request.delete), request.validate_only))

    @rpc
    async def DescribeClusterConfigs(self, request: pb.DescribeClusterConfigsRequest,
                                     context: grpc.aio.ServicerContext) -> pb.ClusterConfigs:
        return pb.ClusterConfigs(configs=self.admin.cluster.image.cluster_configs)

    @rpc
    async def ListTopics(self, request: pb.ListTopicsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListTopicsResponse:
        current_access().require_some_topic_describable()
        return codec.topic_list(_describable(self.admin.list_topics(request.include_internal)))

    @rpc
    async def DescribeTopic(self, request: pb.DescribeTopicRequest,
                            context: grpc.aio.ServicerContext) -> pb.TopicDescription:
        if not current_access().may_describe_topic(request.name):
            raise unknown_topic(request.name)  # exactly what a topic that does not exist gets
        return codec.topic_description(self.admin.describe(request.name))

    @rpc
    async def AlterTopicConfigs(self, request: pb.AlterTopicConfigsRequest,
                                context: grpc.aio.ServicerContext) -> pb.TopicDescription:
        if not self.admin.cluster.is_controller():
            return await self.forward("AlterTopicConfigs", request)  # type: ignore[no-any-return]
        return codec.topic_description(await self.admin.alter_configs(
            request.name, dict(request.set), list(request.delete), request.validate_only))

    @rpc
    async def CreatePartitions(self, request: pb.CreatePartitionsRequest,
                               context: grpc.aio.ServicerContext) -> pb.TopicDescription:
        if not self.admin.cluster.is_controller():
            return await self.forward("CreatePartitions", request)  # type: ignore[no-any-return]
        return codec.topic_description(await self.admin.create_partitions(
            request.name, request.total_count, request.validate_only))


    @rpc
    async def ReassignPartition(self, request: pb.ReassignPartitionRequest,
                                context: grpc.aio.ServicerContext) -> pb.TopicDescription:
        if not self.admin.cluster.is_controller():
            return await self.forward("ReassignPartition", request)  # type: ignore[no-any-return]
        return codec.topic_description(await self.admin.reassign_partition(
            request.topic, request.partition, list(request.replicas), request.validate_only))

    @rpc
    async def DrainBroker(self, request: pb.DrainBrokerRequest,
                          context: grpc.aio.ServicerContext) -> pb.DrainBrokerResponse:
        if not self.admin.cluster.is_controller():
            return await self.forward("DrainBroker", request)  # type: ignore[no-any-return]
        return codec.drain_moves(await self.admin.drain_broker(request.broker_id,
                                                               request.validate_only))

    @rpc
    async def ListProducerNames(self, request: pb.ListProducerNamesRequest,
                                context: grpc.aio.ServicerContext
                                ) -> pb.ListProducerNamesResponse:
        # Any broker answers from its image; names the caller may not describe are left
        # out, as if they did not exist (Kafka's ListTransactions).
        access = current_access()
        named = self.admin.cluster.image.producers.named
        return pb.ListProducerNamesResponse(producers=[
            pb.ProducerNameInfo(name=name, producer_id=p.producer_id, producer_epoch=p.epoch,
                                last_used_ms=p.last_used_ms)
            for name, p in sorted(named.items())
            if name.startswith(request.prefix)
            and access.allowed("producer_name", name, "describe")])


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
