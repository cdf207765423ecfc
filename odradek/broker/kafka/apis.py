"""Kafka's data and topic APIs (ApiVersions, Metadata, Produce, Fetch, ListOffsets,
InitProducerId, CreateTopics, DeleteTopics) as calls on the same domain services the gRPC
front end uses. Record batches go from the request to ReplicatedPartition.append and from
the log to the response as the bytes they are: Odradek stores Kafka's RecordBatch v2."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from odradek.broker import clock
from odradek.broker.auth import operations as op
from odradek.broker.auth.access import Access
from odradek.broker.errors import BrokerError, Reason, unknown_topic
from odradek.broker.kafka import codec
from odradek.broker.kafka import errors as err
from odradek.broker.listeners import Addresses
from odradek.broker.metadata.image import MetadataImage
from odradek.broker.metrics.broker import BrokerMetrics
from odradek.broker.names import refuse_internal
from odradek.broker.peers.forward import GrpcAdminForwarder
from odradek.broker.topic_admin import TopicAdmin
from odradek.broker.topics import reads
from odradek.broker.topics.reads import MAX_WAIT_MS, check_partition_request
from odradek.v1 import odradek_pb2 as pb

EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
DEFAULT_PARTITIONS = 1
NO_TOPIC_ID = uuid.UUID(int=0)


def _topic_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(hex=text)
    except ValueError:
        return NO_TOPIC_ID


class DataApis:
    def __init__(self, admin: TopicAdmin, addresses: Addresses,
                 metrics: BrokerMetrics | None = None) -> None:
        self.admin = admin
        self.addresses = addresses  # how this listener names brokers
        self.metrics = metrics
        self.forwarder = GrpcAdminForwarder(admin.cluster.channels)

    # ------------------------------------------------------------ ApiVersions
    def api_versions(self, version: int, error: int = err.NONE) -> Any:
        cls = codec.response_schema(codec.API_VERSIONS, version)
        module = codec.response_module(codec.API_VERSIONS, version)
        keys = tuple(codec.nested(module, "ApiVersion", api_key=k, min_version=low,
                                  max_version=high)
                     for k, (low, high) in sorted(codec.SUPPORTED.items()))
        return codec.make(cls, error_code=error, api_keys=keys)

    # --------------------------------------------------------------- Metadata
    def metadata(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(3, version)
        view = self.admin.metadata([])
        image = self.admin.cluster.image
        by_name = {t.name: t for t in view.topics}
        names = [self._named(t, image) for t in body.topics] \
            if body.topics is not None else None
        topics = []
        for name in names if names is not None else sorted(by_name):
            if isinstance(name, uuid.UUID):  # asked by an id no topic has
                topics.append(codec.nested(module, "MetadataResponseTopic",
                                           error_code=err.UNKNOWN_TOPIC_ID, name=None,
                                           topic_id=name, is_internal=False, partitions=()))
                continue
            topic = by_name.get(name)
            if names is None and not access.may_describe_topic(name):
                continue
            info = image.topics.get(name)
            internal = name.startswith("__")
            if topic is None or info is None or not access.may_describe_topic(name):
                # Authorization first, as Kafka: a topic the caller may not describe
                # gets the same answer whether it exists or not.
                code = err.UNKNOWN_TOPIC_OR_PARTITION if access.may_describe_topic(name) \
                    else err.TOPIC_AUTHORIZATION_FAILED
                topics.append(codec.nested(module, "MetadataResponseTopic", error_code=code,
                                           name=name, topic_id=NO_TOPIC_ID,
                                           is_internal=internal, partitions=()))
                continue
            partitions = tuple(codec.nested(
                module, "MetadataResponsePartition",
                error_code=err.NONE if p.leader >= 0 else err.kafka_code(
                    Reason.LEADER_NOT_AVAILABLE),
                partition_index=p.partition, leader_id=p.leader,
                leader_epoch=max(p.leader_epoch, -1), replica_nodes=p.replicas,
                isr_nodes=p.in_sync_replicas, offline_replicas=())
                for p in topic.partitions)
            topics.append(codec.nested(module, "MetadataResponseTopic", error_code=err.NONE,
                                       name=name, topic_id=_topic_id(info.topic_id),
                                       is_internal=internal, partitions=partitions,
                                       topic_authorized_operations=-2147483648))
        found = ((b, self.addresses.of(b)) for b in view.brokers)
        brokers = tuple(codec.nested(module, "MetadataResponseBroker", node_id=b.id,
                                     host=where[0], port=where[1], rack=b.rack or None)
                        for b, where in found if where is not None)
        return codec.make(module.MetadataResponse, brokers=brokers,
                          cluster_id=view.cluster_id, controller_id=view.controller_id,
                          topics=tuple(topics), cluster_authorized_operations=-2147483648)

    @staticmethod
    def _named(topic: Any, image: MetadataImage) -> str | uuid.UUID:
        """A requested topic's name; from v10 a client may ask by id instead (as the
        consumer protocol's members do for their assignments), or the id if none has it."""
        if topic.name is not None:
            return str(topic.name)
        topic_id = getattr(topic, "topic_id", None) or NO_TOPIC_ID
        info = image.topic_by_id(topic_id.hex)
        return info.name if info is not None else topic_id

    # ---------------------------------------------------------------- Produce
    async def produce(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(0, version)
        if body.transactional_id is not None:
            return self._produce_refused(module, body, err.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        if body.acks not in (0, 1, -1):
            return self._produce_refused(module, body, err.INVALID_REQUIRED_ACKS)
        timeout_s = max(codec.ms(body.timeout), 1) / 1000
        quorum = body.acks == -1
        jobs = [(t.name, p.index, self._append(access, t.name, p.index, p.records, quorum,
                                                timeout_s))
                for t in body.topic_data for p in t.partition_data]
        answers = await asyncio.gather(*(job for _, _, job in jobs))
        by_topic: dict[str, list[Any]] = {}
        for (topic, index, _), (code, message, base, start) in zip(jobs, answers, strict=True):
            by_topic.setdefault(topic, []).append(codec.nested(
                module, "PartitionProduceResponse", index=index, error_code=code,
                base_offset=base, log_append_time=-1, log_start_offset=start,
                record_errors=(), error_message=message))
        return codec.make(module.ProduceResponse, responses=tuple(
            codec.nested(module, "TopicProduceResponse", name=name,
                         partition_responses=tuple(parts))
            for name, parts in by_topic.items()))

    def _produce_refused(self, module: Any, body: Any, code: int) -> Any:
        return codec.make(module.ProduceResponse, responses=tuple(
            codec.nested(module, "TopicProduceResponse", name=t.name, partition_responses=tuple(
                codec.nested(module, "PartitionProduceResponse", index=p.index,
                             error_code=code, base_offset=-1, record_errors=())
                for p in t.partition_data))
            for t in body.topic_data))

    async def _append(self, access: Access, topic: str, index: int, records: bytes | None,
                      quorum: bool, timeout_s: float) -> tuple[int, str | None, int, int]:
        """(error code, message, base offset, log start offset)."""
        try:
            check_partition_request(topic, index)
            refuse_internal(topic, "produce to")
            op.produce(access, topic)
            if not records:
                raise BrokerError(Reason.INVALID_RECORD, "the request carries no records")
            partition = self.admin.leader_partition(topic, index)
            # kio's Records is a bytes subclass: appended as it is, not copied.
            info = await partition.append(records, quorum=quorum, timeout_s=timeout_s)
            if self.metrics is not None:
                self.metrics.produced(topic, records)
            return err.NONE, None, info.base_offset, partition.log.log_start_offset
        except Exception as exc:
            code, message = err.error_of(exc, "Produce")
            return code, message, -1, -1

    # ------------------------------------------------------------------ Fetch
    async def fetch(self, version: int, body: Any, access: Access) -> Any:
        """max_wait and min_bytes hold for the whole request, as in Kafka: the partitions
        are read at once, and again after an append to one of them until min_bytes have
        come or max_wait has passed. max_bytes bounds the sum, except that the first
        batch of the answer is sent whole whatever its size."""
        module = codec.response_module(1, version)
        wanted = [(t.topic, p.partition, p.fetch_offset, p.partition_max_bytes)
                  for t in body.topics for p in t.partitions]
        deadline = clock.monotonic() + min(max(codec.ms(body.max_wait), 0), MAX_WAIT_MS) / 1000
        total_budget = body.max_bytes if body.max_bytes > 0 else reads.MAX_FETCH_BYTES
        while True:
            answers = [self._read(access, topic, index, offset, max_bytes)
                       for topic, index, offset, max_bytes in wanted]
            answers = self._within(answers, total_budget)
            got = sum(len(a[1]) for a in answers)
            remaining = deadline - clock.monotonic()
            partitions = [a[4] for a in answers if a[4] is not None]
            if got >= max(body.min_bytes, 1) or remaining <= 0 or not partitions or \
                    any(a[0] != err.NONE for a in answers):
                break
            waits = [asyncio.ensure_future(p.wait_for_append(remaining)) for p in partitions]
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        by_topic: dict[str, list[Any]] = {}
        for (topic, index, _, _), (code, data, hw, start, _) in zip(wanted, answers,
                                                                   strict=True):
            if self.metrics is not None and data:
                self.metrics.fetched(topic, data)
            by_topic.setdefault(topic, []).append(codec.nested(
                module, "PartitionData", partition_index=index, error_code=code,
                high_watermark=hw, last_stable_offset=hw, log_start_offset=start,
                aborted_transactions=(), preferred_read_replica=-1, records=data))
        return codec.make(module.FetchResponse, error_code=err.NONE, session_id=0,
                          responses=tuple(codec.nested(module, "FetchableTopicResponse",
                                                       topic=name, partitions=tuple(parts))
                                          for name, parts in by_topic.items()))

    def _read(self, access: Access, topic: str, index: int, offset: int,
              max_bytes: int) -> tuple[int, bytes, int, int, Any]:
        try:
            check_partition_request(topic, index)
            op.read_topic(access, topic)
            partition = self.admin.leader_partition(topic, index)
            result = partition.read(offset, reads.fetch_bytes(max(max_bytes, 1)))
            return (err.NONE, result.data, partition.high_watermark,
                    partition.log.log_start_offset, partition)
        except Exception as exc:
            code, _ = err.error_of(exc, "Fetch")
            return code, b"", -1, -1, None

    @staticmethod
    def _within(answers: list[tuple[int, bytes, int, int, Any]],
                budget: int) -> list[tuple[int, bytes, int, int, Any]]:
        """Drops whole partitions' data past the request's byte budget (after the first
        that has data); a partition left out is asked again in the next fetch."""
        out = []
        used = 0
        for code, data, hw, start, partition in answers:
            if data and used and used + len(data) > budget:
                data = b""
            used += len(data)
            out.append((code, data, hw, start, partition))
        return out

    # ------------------------------------------------------------ ListOffsets
    def list_offsets(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(2, version)
        topics = []
        for t in body.topics:
            parts = []
            for p in t.partitions:
                code, offset, ts = err.NONE, -1, -1
                try:
                    check_partition_request(t.name, p.partition_index)
                    op.read_topic(access, t.name)
                    partition = self.admin.leader_partition(t.name, p.partition_index)
                    if p.timestamp == EARLIEST_TIMESTAMP:
                        answer = reads.list_offsets(partition, reads.OffsetSpec.EARLIEST)
                    elif p.timestamp == LATEST_TIMESTAMP:
                        answer = reads.list_offsets(partition, reads.OffsetSpec.LATEST)
                    else:
                        answer = reads.list_offsets(partition, reads.OffsetSpec.TIMESTAMP,
                                                    p.timestamp)
                    if answer.found:
                        offset, ts = answer.offset, answer.timestamp_ms
                except Exception as exc:
                    code, _ = err.error_of(exc, "ListOffsets")
                parts.append(codec.nested(module, "ListOffsetsPartitionResponse",
                                          partition_index=p.partition_index, error_code=code,
                                          timestamp=ts, offset=offset, leader_epoch=-1))
            topics.append(codec.nested(module, "ListOffsetsTopicResponse", name=t.name,
                                       partitions=tuple(parts)))
        return codec.make(module.ListOffsetsResponse, topics=tuple(topics))

    # --------------------------------------------------------- InitProducerId
    async def init_producer_id(self, version: int, body: Any, access: Access) -> Any:
        cls = codec.response_schema(22, version)
        if body.transactional_id is not None:
            return codec.make(cls, error_code=err.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                              producer_id=-1, producer_epoch=-1)
        try:
            op.init_producer_id(access)
            pid, epoch = await self.admin.cluster.producer_ids.init(None, None)
        except Exception as exc:
            code, _ = err.error_of(exc, "InitProducerId")
            return codec.make(cls, error_code=code, producer_id=-1, producer_epoch=-1)
        return codec.make(cls, error_code=err.NONE, producer_id=pid, producer_epoch=epoch)

    # ------------------------------------------------------- topic admin
    async def create_topics(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(19, version)
        results = []
        for t in body.topics:
            code, message = err.NONE, None
            partitions = t.num_partitions if t.num_partitions > 0 else DEFAULT_PARTITIONS
            rf = max(t.replication_factor, 0)  # -1: the broker's default
            configs = {c.name: c.value for c in t.configs if c.value is not None}
            try:
                op.create_topic(access, t.name)
                if t.assignments:
                    raise BrokerError(Reason.INVALID_REPLICA_ASSIGNMENT,
                                      "manual replica assignments are not supported; "
                                      "give a partition count and replication factor")
                if self.admin.cluster.is_controller():
                    await self.admin.create(t.name, partitions, rf, configs,
                                            bool(body.validate_only))
                elif not body.validate_only:
                    await self.forwarder.create_topic(self.admin.controller_address(),
                                                      t.name, partitions, rf, configs)
            except Exception as exc:
                code, message = err.error_of(exc, "CreateTopics")
            info = self.admin.cluster.image.topics.get(t.name)
            results.append(codec.nested(
                module, "CreatableTopicResult", name=t.name, error_code=code,
                error_message=message,
                topic_id=_topic_id(info.topic_id) if info is not None else NO_TOPIC_ID,
                num_partitions=partitions if code == err.NONE else -1,
                replication_factor=(info.replication_factor if info is not None else rf)
                if code == err.NONE else -1, configs=None))
        return codec.make(module.CreateTopicsResponse, topics=tuple(results))

    async def delete_topics(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(20, version)
        results = []
        for name in body.topic_names:
            code, message = err.NONE, None
            try:
                op.delete_topic(access, name)
                if name not in self.admin.cluster.image.topics:
                    raise unknown_topic(name)
                if self.admin.cluster.is_controller():
                    await self.admin.delete(name)
                else:
                    await self.forwarder.forward(self.admin.controller_address(),
                                                 "DeleteTopic", pb.DeleteTopicRequest(name=name))
            except Exception as exc:
                code, message = err.error_of(exc, "DeleteTopics")
            results.append(codec.nested(module, "DeletableTopicResult", name=name,
                                        error_code=code, error_message=message))
        return codec.make(module.DeleteTopicsResponse, responses=tuple(results))

    # --------------------------------------------------- OffsetForLeaderEpoch
    def offset_for_leader_epoch(self, version: int, body: Any, access: Access) -> Any:
        """Where each asked leader epoch ended on this leader (the Raft term is the
        epoch), so that a client can tell whether its position was truncated away."""
        module = codec.response_module(23, version)
        topics = []
        for t in body.topics:
            parts = []
            for p in t.partitions:
                code, epoch, end = err.NONE, -1, -1
                try:
                    check_partition_request(t.topic, p.partition)
                    op.read_topic(access, t.topic)
                    partition = self.admin.leader_partition(t.topic, p.partition)
                    epoch, end = reads.epoch_end(partition, p.leader_epoch)
                except Exception as exc:
                    code, _ = err.error_of(exc, "OffsetForLeaderEpoch")
                parts.append(codec.nested(module, "EpochEndOffset", error_code=code,
                                          partition=p.partition, leader_epoch=epoch,
                                          end_offset=end))
            topics.append(codec.nested(module, "OffsetForLeaderTopicResult", topic=t.topic,
                                       partitions=tuple(parts)))
        return codec.make(module.OffsetForLeaderEpochResponse, topics=tuple(topics))
