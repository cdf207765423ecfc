"""An in-process fake of Odradek brokers for client tests: a grpc.aio server per broker
that implements the proto over in-memory partition logs, with injectable faults."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2, status_pb2

from odradek.records import BatchBuilder, InvalidRecordError, decode_batch, validate_batches
from odradek.records.batch import set_offset_and_epoch
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc

T = TypeVar("T")


class Abort(Exception):
    def __init__(self, code: grpc.StatusCode, reason: str, message: str,
                 metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.metadata = metadata or {}


async def abort(context: grpc.aio.ServicerContext, err: Abort) -> None:
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain="odradek.io",
                                       metadata=err.metadata)
    status = status_pb2.Status(code=err.code.value[0], message=err.message)
    status.details.add().Pack(info)
    details = status.SerializeToString()
    await context.abort(err.code, err.message,
                        trailing_metadata=(("grpc-status-details-bin", details),))


@dataclass
class Fault:
    method: str
    reason: str | None  # None: a plain status without ErrorInfo
    code: grpc.StatusCode
    count: int = 1
    broker: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    skip: int = 0  # matching calls to let through first


@dataclass
class Partition:
    batches: list[tuple[int, int, bytes]] = field(default_factory=list)  # base, last, bytes
    next_offset: int = 0
    log_start: int = 0


class FakeCluster:
    def __init__(self, brokers: int = 1) -> None:
        self.n = brokers
        self.topics: dict[str, list[Partition]] = {}
        self.configs: dict[str, dict[str, str]] = {}
        self.leaders: dict[tuple[str, int], int] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[int, str, Any]] = []  # (broker, method, request)
        self.ports: list[int] = []
        self.leader_hints = False
        self.log_append_time = False
        self.next_producer_id = 1000
        self._servers: list[grpc.aio.Server] = []
        self.cond: asyncio.Condition | None = None

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    async def start(self) -> FakeCluster:
        self.cond = asyncio.Condition()
        for bid in range(self.n):
            server = grpc.aio.server(options=[
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 64 << 20)])
            pb_grpc.add_BrokerServicer_to_server(BrokerServicer(self, bid), server)
            pb_grpc.add_AdminServicer_to_server(AdminServicer(self, bid), server)
            self.ports.append(server.add_insecure_port("127.0.0.1:0"))
            await server.start()
            self._servers.append(server)
        return self

    async def stop(self) -> None:
        for s in self._servers:
            await s.stop(None)

    # -- helpers for tests ---------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1, leader: int = 0) -> None:
        self.topics[name] = [Partition() for _ in range(partitions)]
        self.configs[name] = {}
        for p in range(partitions):
            self.leaders[(name, p)] = leader

    def inject(self, method: str, reason: str | None, code: grpc.StatusCode,
               count: int = 1, broker: int | None = None, skip: int = 0,
               **metadata: str) -> None:
        self.faults.append(Fault(method, reason, code, count, broker, dict(metadata), skip))

    def append_raw(self, topic: str, partition: int, data: bytes, skip: int = 0) -> int:
        part = self.topics[topic][partition]
        part.next_offset += skip
        headers = validate_batches(data, 1 << 30)
        buf = bytearray(data)
        pos = 0
        base = part.next_offset
        for h in headers:
            set_offset_and_epoch(buf, pos, part.next_offset, 1)
            part.batches.append((part.next_offset, part.next_offset + h.last_offset_delta,
                                 bytes(buf[pos:pos + h.size])))
            part.next_offset += h.last_offset_delta + 1
            pos += h.size
        return base

    def append_control(self, topic: str, partition: int) -> int:
        b = BatchBuilder(control=True)
        b.append(0, None, b"\x00\x00\x00\x00")
        return self.append_raw(topic, partition, b.build())

    def records(self, topic: str, partition: int) -> list[Any]:
        out = []
        for _, _, data in self.topics[topic][partition].batches:
            from odradek.records import parse_header
            if parse_header(data).is_control:
                continue
            out.extend(decode_batch(data))
        return out

    def produce_requests(self, broker: int | None = None) -> list[pb.ProduceRequest]:
        return [r for b, m, r in self.requests
                if m == "Produce" and (broker is None or b == broker)]

    async def notify(self) -> None:
        assert self.cond is not None
        async with self.cond:
            self.cond.notify_all()

    def fault_for(self, method: str, broker: int) -> Fault | None:
        for f in self.faults:
            if f.method == method and (f.broker is None or f.broker == broker) and f.count > 0:
                if f.skip > 0:
                    f.skip -= 1
                    continue
                f.count -= 1
                return f
        return None

    def partition(self, topic: str, partition: int) -> Partition:
        parts = self.topics.get(topic)
        if parts is None or not 0 <= partition < len(parts):
            raise Abort(grpc.StatusCode.NOT_FOUND, "UNKNOWN_TOPIC_OR_PARTITION",
                        f"unknown topic or partition {topic}-{partition}", {"topic": topic})
        return parts[partition]


def _servicer_method(name: str) -> Callable[..., Any]:
    async def method(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        cluster: FakeCluster = self.cluster
        cluster.requests.append((self.bid, name, request))
        try:
            fault = cluster.fault_for(name, self.bid)
            if fault is not None:
                if fault.reason is None:
                    await context.abort(fault.code, f"injected {fault.code.name}")
                raise Abort(fault.code, fault.reason, f"injected {fault.reason}", fault.metadata)
            return await getattr(self, "_" + name)(request, context)
        except Abort as err:
            await abort(context, err)
    method.__name__ = name
    return method


class BrokerServicer(pb_grpc.BrokerServicer):  # type: ignore[misc]
    def __init__(self, cluster: FakeCluster, bid: int) -> None:
        self.cluster, self.bid = cluster, bid

    Produce = _servicer_method("Produce")
    Fetch = _servicer_method("Fetch")
    ListOffsets = _servicer_method("ListOffsets")
    Metadata = _servicer_method("Metadata")
    InitProducerId = _servicer_method("InitProducerId")

    async def _InitProducerId(self, req: pb.InitProducerIdRequest,
                              ctx: Any) -> pb.InitProducerIdResponse:
        pid = self.cluster.next_producer_id
        self.cluster.next_producer_id += 1
        return pb.InitProducerIdResponse(producer_id=pid, producer_epoch=0)

    def _check_leader(self, topic: str, partition: int) -> None:
        leader = self.cluster.leaders[(topic, partition)]
        if leader != self.bid:
            md = {"topic": topic}
            if self.cluster.leader_hints:
                md["leader"] = f"127.0.0.1:{self.cluster.ports[leader]}"
            raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "NOT_LEADER",
                        f"broker {self.bid} does not lead {topic}-{partition}", md)

    async def _Produce(self, req: pb.ProduceRequest, ctx: Any) -> pb.ProduceResponse:
        self.cluster.partition(req.topic, req.partition)
        self._check_leader(req.topic, req.partition)
        try:
            validate_batches(req.records, 1 << 20)
        except InvalidRecordError as exc:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, exc.reason, str(exc)) from None
        part = self.cluster.partition(req.topic, req.partition)
        base = self.cluster.append_raw(req.topic, req.partition, req.records)
        await self.cluster.notify()
        ts = 1_700_000_000_000 if self.cluster.log_append_time else -1
        return pb.ProduceResponse(base_offset=base, last_offset=part.next_offset - 1,
                                  log_append_time_ms=ts, log_start_offset=part.log_start)

    async def _Fetch(self, req: pb.FetchRequest, ctx: Any) -> pb.FetchResponse:
        part = self.cluster.partition(req.topic, req.partition)
        self._check_leader(req.topic, req.partition)
        if req.offset > part.next_offset or req.offset < part.log_start:
            raise Abort(grpc.StatusCode.OUT_OF_RANGE, "OFFSET_OUT_OF_RANGE",
                        f"offset {req.offset} is outside [{part.log_start}, {part.next_offset}]")
        if req.offset >= part.next_offset and req.max_wait_ms > 0:
            cond = self.cluster.cond
            assert cond is not None
            async with cond:
                try:
                    await asyncio.wait_for(
                        cond.wait_for(lambda: part.next_offset > req.offset),
                        req.max_wait_ms / 1000)
                except TimeoutError:
                    pass
        out = bytearray()
        next_offset = req.offset
        for _base, last, data in part.batches:
            if last < req.offset:
                continue
            if out and len(out) + len(data) > req.max_bytes:
                break
            out += data
            next_offset = last + 1
        return pb.FetchResponse(records=bytes(out), high_watermark=part.next_offset,
                                log_start_offset=part.log_start, next_offset=next_offset)

    async def _ListOffsets(self, req: pb.ListOffsetsRequest, ctx: Any) -> pb.ListOffsetsResponse:
        part = self.cluster.partition(req.topic, req.partition)
        self._check_leader(req.topic, req.partition)
        if req.spec == pb.OFFSET_SPEC_EARLIEST:
            return pb.ListOffsetsResponse(found=True, offset=part.log_start, timestamp_ms=-1)
        if req.spec == pb.OFFSET_SPEC_LATEST:
            return pb.ListOffsetsResponse(found=True, offset=part.next_offset, timestamp_ms=-1)
        for _, _, data in part.batches:
            for r in decode_batch(data):
                if r.timestamp >= req.timestamp_ms:
                    return pb.ListOffsetsResponse(found=True, offset=r.offset,
                                                  timestamp_ms=r.timestamp)
        return pb.ListOffsetsResponse(found=False, offset=part.next_offset, timestamp_ms=-1)

    async def _Metadata(self, req: pb.MetadataRequest, ctx: Any) -> pb.MetadataResponse:
        c = self.cluster
        resp = pb.MetadataResponse(cluster_id="fake", controller_id=0)
        for bid, port in enumerate(c.ports):
            resp.brokers.add(id=bid, host="127.0.0.1", port=port)
        for name, parts in c.topics.items():
            if req.topics and name not in req.topics:
                continue
            t = resp.topics.add(name=name)
            for p in range(len(parts)):
                t.partitions.add(partition=p, leader=c.leaders[(name, p)], replicas=[0],
                                 in_sync_replicas=[0], leader_epoch=1)
        return resp


class AdminServicer(pb_grpc.AdminServicer):  # type: ignore[misc]
    def __init__(self, cluster: FakeCluster, bid: int) -> None:
        self.cluster, self.bid = cluster, bid

    CreateTopic = _servicer_method("CreateTopic")
    DeleteTopic = _servicer_method("DeleteTopic")
    ListTopics = _servicer_method("ListTopics")
    DescribeTopic = _servicer_method("DescribeTopic")
    AlterTopicConfigs = _servicer_method("AlterTopicConfigs")
    CreatePartitions = _servicer_method("CreatePartitions")

    def _describe(self, name: str) -> pb.TopicDescription:
        c = self.cluster
        if name not in c.topics:
            raise Abort(grpc.StatusCode.NOT_FOUND, "UNKNOWN_TOPIC_OR_PARTITION",
                        f"topic {name!r} does not exist", {"topic": name})
        d = pb.TopicDescription(name=name, topic_id="id-" + name, replication_factor=1)
        for p, part in enumerate(c.topics[name]):
            d.partitions.add(info=pb.PartitionInfo(partition=p, leader=c.leaders[(name, p)],
                                                   replicas=[0], in_sync_replicas=[0]),
                             log_start_offset=part.log_start, high_watermark=part.next_offset)
        for k, v in sorted(c.configs[name].items()):
            d.configs.add(name=k, value=v, is_default=False)
        if "retention.ms" not in c.configs[name]:
            d.configs.add(name="retention.ms", value="604800000", is_default=True)
        return d

    def _check_configs(self, configs: dict[str, str]) -> None:
        for k in configs:
            if k.startswith("bogus"):
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CONFIG",
                            f"unknown config {k!r}", {"config": k})

    async def _CreateTopic(self, req: pb.CreateTopicRequest, ctx: Any) -> pb.CreateTopicResponse:
        c = self.cluster
        if req.name in c.topics:
            raise Abort(grpc.StatusCode.ALREADY_EXISTS, "TOPIC_ALREADY_EXISTS",
                        f"topic {req.name!r} already exists", {"topic": req.name})
        if req.partitions < 1:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARTITIONS",
                        "partitions must be at least 1")
        self._check_configs(dict(req.configs))
        if req.validate_only:
            return pb.CreateTopicResponse(topic=pb.TopicDescription(name=req.name))
        c.create_topic(req.name, req.partitions)
        c.configs[req.name] = dict(req.configs)
        return pb.CreateTopicResponse(topic=self._describe(req.name))

    async def _DeleteTopic(self, req: pb.DeleteTopicRequest, ctx: Any) -> pb.DeleteTopicResponse:
        self._describe(req.name)
        del self.cluster.topics[req.name]
        return pb.DeleteTopicResponse()

    async def _ListTopics(self, req: pb.ListTopicsRequest, ctx: Any) -> pb.ListTopicsResponse:
        resp = pb.ListTopicsResponse()
        for name, parts in sorted(self.cluster.topics.items()):
            resp.topics.add(name=name, partitions=len(parts), replication_factor=1)
        return resp

    async def _DescribeTopic(self, req: pb.DescribeTopicRequest, ctx: Any) -> pb.TopicDescription:
        return self._describe(req.name)

    async def _AlterTopicConfigs(self, req: pb.AlterTopicConfigsRequest,
                                 ctx: Any) -> pb.TopicDescription:
        self._describe(req.name)
        self._check_configs(dict(req.set))
        cfg = self.cluster.configs[req.name]
        cfg.update(req.set)
        for k in req.delete:
            cfg.pop(k, None)
        return self._describe(req.name)

    async def _CreatePartitions(self, req: pb.CreatePartitionsRequest,
                                ctx: Any) -> pb.TopicDescription:
        self._describe(req.name)
        parts = self.cluster.topics[req.name]
        if req.total_count <= len(parts):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARTITIONS",
                        f"topic has {len(parts)} partitions already")
        for p in range(len(parts), req.total_count):
            parts.append(Partition())
            self.cluster.leaders[(req.name, p)] = 0
        return self._describe(req.name)


class ThreadedFake:
    """A FakeCluster on its own event loop thread, for sync wrappers and the CLI."""

    def __init__(self, brokers: int = 1) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.cluster = FakeCluster(brokers)
        self.run(self.cluster.start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def call(self, fn: Callable[[], T]) -> T:
        async def go() -> T:
            return fn()
        return self.run(go())

    def stop(self) -> None:
        self.run(self.cluster.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


if __name__ == "__main__":  # a standalone fake for manual runs: prints its bootstrap
    async def _serve() -> None:
        fake = await FakeCluster().start()
        print(fake.bootstrap, flush=True)
        await asyncio.Event().wait()

    asyncio.run(_serve())
