"""Odradek's client: Producer, Consumer and Admin (asyncio), with synchronous wrappers.

    async with Producer("127.0.0.1:9092") as producer:
        meta = await producer.send_and_wait("orders", b"hello", key=b"order-1")

The client speaks the gRPC contract in odradek.v1 and the record format in
odradek.records; it depends on nothing else of Odradek.
"""

from odradek.client.admin import Admin
from odradek.client.connection import Cluster, parse_bootstrap
from odradek.client.consumer import Consumer, ConsumerRecord, TopicPartition
from odradek.client.errors import (
    ClientClosedError,
    CorruptRecordError,
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidRecordError,
    InvalidRequestError,
    InvalidTopicError,
    LeaderNotAvailableError,
    NotLeaderError,
    OdradekError,
    OffsetNotAvailableError,
    OffsetOutOfRangeError,
    PermissionDeniedError,
    RecordTooLargeError,
    RequestTimeoutError,
    TopicAlreadyExistsError,
    UnavailableError,
    UnknownTopicOrPartitionError,
    UnsupportedMagicError,
    from_rpc_error,
)
from odradek.client.partitioner import DefaultPartitioner, murmur2
from odradek.client.producer import Producer, RecordMetadata
from odradek.client.sync import SyncAdmin, SyncConsumer, SyncProducer

__all__ = [
    "Admin",
    "ClientClosedError",
    "Cluster",
    "Consumer",
    "ConsumerRecord",
    "CorruptRecordError",
    "DefaultPartitioner",
    "InvalidConfigError",
    "InvalidPartitionsError",
    "InvalidRecordError",
    "InvalidRequestError",
    "InvalidTopicError",
    "LeaderNotAvailableError",
    "NotLeaderError",
    "OdradekError",
    "OffsetNotAvailableError",
    "OffsetOutOfRangeError",
    "PermissionDeniedError",
    "Producer",
    "RecordMetadata",
    "RecordTooLargeError",
    "RequestTimeoutError",
    "SyncAdmin",
    "SyncConsumer",
    "SyncProducer",
    "TopicAlreadyExistsError",
    "TopicPartition",
    "UnavailableError",
    "UnknownTopicOrPartitionError",
    "UnsupportedMagicError",
    "from_rpc_error",
    "murmur2",
    "parse_bootstrap",
]
