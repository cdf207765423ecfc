"""The largest request each gRPC method takes, as Kafka's socket.request.max.bytes but
fitted per method: a SCRAM message is a few hundred bytes, a Produce request megabytes.

gRPC's own limit (grpc.max_receive_message_length) is one per server and refuses a
message from its length prefix, before buffering it; it is set to the largest limit
here, which is kept as small as what the largest method needs (a Raft envelope carrying
one Produce's entry: 33 MiB). A request over its method's smaller limit is still
received (up to that), but refused before it is parsed: no protobuf objects, no servicer
work, no log line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from odradek.broker.errors import BrokerError, Reason
from odradek.broker.peers.raft_transport import MAX_MESSAGE_BYTES as RAFT_MESSAGE_BYTES
from odradek.broker.replication.replica import MAX_APPEND_BYTES

KiB = 1024
MiB = 1024 * KiB

# SCRAM fields are capped at 4096 characters (up to 4 bytes each in UTF-8).
AUTH = 20 * KiB
# One name, a partition, an offset: a describe, a delete, a fetch.
SMALL = 64 * KiB
# Lists of names or bindings: metadata of many topics, ACLs, topic configs.
LISTS = 1 * MiB
# Offsets of many partitions, each with its metadata string.
OFFSETS = 4 * MiB
# The batches of one append, and a topic name and a few fields beside them.
PRODUCE = MAX_APPEND_BYTES + SMALL
# Metadata commands forwarded to the controller (a topic of many partitions).
PROPOSE = 16 * MiB

_LIMITS: dict[str, dict[str, int]] = {
    "odradek.v1.Broker": {"Produce": PRODUCE, "Fetch": SMALL, "Subscribe": SMALL,
                          "ListOffsets": SMALL, "Metadata": LISTS, "InitProducerId": SMALL},
    "odradek.v1.Admin": {"CreateTopic": LISTS, "DeleteTopic": SMALL, "ListTopics": SMALL,
                         "DescribeTopic": SMALL, "AlterTopicConfigs": LISTS,
                         "CreatePartitions": SMALL, "ReassignPartition": SMALL,
                         "DrainBroker": SMALL, "ListProducerNames": SMALL,
                         "DeleteRecords": LISTS, "ElectLeaders": LISTS,
                         "DescribeBrokerConfigs": SMALL, "AlterClusterConfigs": LISTS,
                         "DescribeClusterConfigs": SMALL},
    "odradek.v1.Security": {"ScramStart": AUTH, "ScramFinish": AUTH, "CreateUser": SMALL,
                            "AlterUser": SMALL, "DeleteUser": SMALL, "ListUsers": SMALL,
                            "CreateAcls": LISTS, "DeleteAcls": LISTS, "ListAcls": SMALL},
    # Membership: per message of the stream.
    "odradek.v1.Groups": {"FindCoordinator": SMALL, "Membership": LISTS,
                          "CommitOffsets": OFFSETS, "FetchOffsets": LISTS,
                          "ListGroups": SMALL, "DescribeGroup": SMALL, "DeleteGroup": SMALL,
                          "ResetOffsets": LISTS},
    "odradek.v1.Controller": {"Propose": PROPOSE, "FetchMetadata": SMALL},
    # Envelopes of Raft messages between brokers (raft_transport caps one message so).
    "odradek.v1.Raft": {"Exchange": RAFT_MESSAGE_BYTES},
}

REQUEST_LIMITS: dict[str, int] = {
    f"/{service}/{method}": limit
    for service, methods in _LIMITS.items() for method, limit in methods.items()}
"""Full method name -> the most bytes one request message of it may have."""

DEFAULT_LIMIT = SMALL
"""Methods not listed (health checks, reflection) take small requests."""

SERVER_RECEIVE_LIMIT = max(REQUEST_LIMITS.values())
"""What gRPC itself refuses (before buffering): nothing any method takes is larger. It is
the Raft envelope's 33 MiB, just above a Produce (the batches of one append, 32 MiB), so a
call of any method is buffered up to that at most before it is refused."""
if SERVER_RECEIVE_LIMIT > RAFT_MESSAGE_BYTES or PRODUCE > RAFT_MESSAGE_BYTES:
    raise AssertionError("a Produce (one Raft entry) must fit in one Raft message")


def request_limit(method: str) -> int:
    return REQUEST_LIMITS.get(method, DEFAULT_LIMIT)


@dataclass(frozen=True)
class Oversized:
    """What a method's deserializer returns instead of a message over its limit: the
    call is then refused without the bytes having been parsed."""

    method: str
    size: int
    limit: int

    def error(self) -> BrokerError:
        name = self.method.rpartition("/")[2]
        return BrokerError(
            Reason.REQUEST_TOO_LARGE,
            f"a {name} request is at most {self.limit} bytes on this broker; this one is "
            f"{self.size} bytes", {"method": name, "limit": str(self.limit),
                                   "size": str(self.size)})


@dataclass(frozen=True)
class Malformed:
    """What a method's deserializer returns for bytes that are not its request message
    (grpc would answer an opaque INTERNAL)."""

    method: str
    problem: str

    def error(self) -> BrokerError:
        name = self.method.rpartition("/")[2]
        return BrokerError(Reason.INVALID_REQUEST,
                           f"the request is not a valid {name} message: {self.problem}"[:300])


def limited(method: str, deserializer: Callable[[bytes], Any] | None,
            limit: int) -> Callable[[bytes], Any]:
    """`deserializer`, refusing more than `limit` bytes before parsing them."""

    def deserialize(data: bytes) -> Any:
        if len(data) > limit:
            return Oversized(method, len(data), limit)
        if deserializer is None:
            return data
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError, or whatever a parser raises
            return Malformed(method, f"{type(exc).__name__}: {exc}")

    return deserialize
