"""Odradek's client: Producer, Consumer and Admin (asyncio), with synchronous wrappers.

    async with Producer("127.0.0.1:9092") as producer:
        meta = await producer.send_and_wait("orders", b"hello", key=b"order-1")

The client speaks the gRPC contract in odradek.v1 and the record format in
odradek.records; it depends on nothing else of Odradek.
"""

from odradek.client.acls import AclBinding, AclFilter, acl, acl_filter
from odradek.client.admin import Admin
from odradek.client.connection import Cluster, parse_bootstrap
from odradek.client.consumer import Consumer, ConsumerRecord, TopicPartition
from odradek.client.delivery import RecordFuture, RecordMetadata
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
from odradek.client.producer import Producer
from odradek.client.sync import SyncAdmin, SyncConsumer, SyncProducer
from odradek.client.types import (
    GroupDescription,
    GroupSummary,
    Metadata,
    OffsetAnswer,
    OffsetChange,
    TopicDescription,
    TopicSummary,
    UserDescription,
)

__all__ = [
    "AclBinding",
    "AclFilter",
    "Admin",
    "ClientClosedError",
    "Cluster",
    "Consumer",
    "ConsumerRecord",
    "CorruptRecordError",
    "DefaultPartitioner",
    "GroupDescription",
    "GroupSummary",
    "InvalidConfigError",
    "InvalidPartitionsError",
    "InvalidRecordError",
    "InvalidRequestError",
    "InvalidTopicError",
    "LeaderNotAvailableError",
    "Metadata",
    "NotLeaderError",
    "OffsetAnswer",
    "OffsetChange",
    "OdradekError",
    "OffsetNotAvailableError",
    "OffsetOutOfRangeError",
    "PermissionDeniedError",
    "Producer",
    "RecordFuture",
    "RecordMetadata",
    "RecordTooLargeError",
    "RequestTimeoutError",
    "SyncAdmin",
    "SyncConsumer",
    "SyncProducer",
    "TopicAlreadyExistsError",
    "TopicDescription",
    "TopicPartition",
    "TopicSummary",
    "UnavailableError",
    "UnknownTopicOrPartitionError",
    "UnsupportedMagicError",
    "UserDescription",
    "acl",
    "acl_filter",
    "from_rpc_error",
    "murmur2",
    "parse_bootstrap",
]
