"""Broker errors as gRPC statuses: a code chosen by the reason, the message, and a
google.rpc.ErrorInfo (domain odradek.io) carrying the reason and its metadata, which is
what clients read."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from odradek.broker.errors import BrokerError
from odradek.broker.logs import clip
from odradek.broker.reasons import Reason

DOMAIN = "odradek.io"

_C = grpc.StatusCode
STATUS_CODES: dict[Reason, grpc.StatusCode] = {
    Reason.INVALID_REQUEST: _C.INVALID_ARGUMENT,
    Reason.INTERNAL: _C.INTERNAL,
    Reason.THROTTLED: _C.RESOURCE_EXHAUSTED,
    Reason.REQUEST_TOO_LARGE: _C.RESOURCE_EXHAUSTED,
    Reason.DISK_FULL: _C.RESOURCE_EXHAUSTED,
    Reason.KAFKA_STORAGE_ERROR: _C.UNAVAILABLE,
    Reason.INVALID_RECORD: _C.INVALID_ARGUMENT,
    Reason.CORRUPT_RECORD: _C.INVALID_ARGUMENT,
    Reason.RECORD_TOO_LARGE: _C.INVALID_ARGUMENT,
    Reason.UNSUPPORTED_MAGIC: _C.INVALID_ARGUMENT,
    Reason.UNKNOWN_TOPIC_OR_PARTITION: _C.NOT_FOUND,
    Reason.TOPIC_ALREADY_EXISTS: _C.ALREADY_EXISTS,
    Reason.INVALID_TOPIC: _C.INVALID_ARGUMENT,
    Reason.INVALID_PARTITIONS: _C.INVALID_ARGUMENT,
    Reason.INVALID_REPLICATION_FACTOR: _C.INVALID_ARGUMENT,
    Reason.INVALID_REPLICA_ASSIGNMENT: _C.INVALID_ARGUMENT,
    Reason.INVALID_CONFIG: _C.INVALID_ARGUMENT,
    Reason.BROKER_NOT_AVAILABLE: _C.FAILED_PRECONDITION,
    Reason.NOT_LEADER: _C.UNAVAILABLE,
    Reason.LEADER_NOT_AVAILABLE: _C.UNAVAILABLE,
    Reason.NOT_ENOUGH_REPLICAS: _C.UNAVAILABLE,
    Reason.NOT_CONTROLLER: _C.UNAVAILABLE,
    Reason.PREFERRED_LEADER_NOT_AVAILABLE: _C.FAILED_PRECONDITION,
    Reason.REASSIGNMENT_IN_PROGRESS: _C.FAILED_PRECONDITION,
    Reason.OFFSET_OUT_OF_RANGE: _C.OUT_OF_RANGE,
    Reason.OFFSET_NOT_AVAILABLE: _C.UNAVAILABLE,
    Reason.OUT_OF_ORDER_SEQUENCE: _C.FAILED_PRECONDITION,
    Reason.PRODUCER_FENCED: _C.FAILED_PRECONDITION,
    Reason.TOO_MANY_PRODUCER_NAMES: _C.RESOURCE_EXHAUSTED,
    Reason.INVALID_GROUP_ID: _C.INVALID_ARGUMENT,
    Reason.GROUP_ID_NOT_FOUND: _C.NOT_FOUND,
    Reason.NOT_COORDINATOR: _C.UNAVAILABLE,
    Reason.COORDINATOR_NOT_AVAILABLE: _C.UNAVAILABLE,
    Reason.COORDINATOR_LOAD_IN_PROGRESS: _C.UNAVAILABLE,
    Reason.UNKNOWN_MEMBER_ID: _C.FAILED_PRECONDITION,
    Reason.ILLEGAL_GENERATION: _C.FAILED_PRECONDITION,
    Reason.FENCED_MEMBER: _C.FAILED_PRECONDITION,
    Reason.FENCED_INSTANCE_ID: _C.FAILED_PRECONDITION,
    Reason.INCONSISTENT_GROUP_PROTOCOL: _C.FAILED_PRECONDITION,
    Reason.INVALID_SESSION_TIMEOUT: _C.INVALID_ARGUMENT,
    Reason.NON_EMPTY_GROUP: _C.FAILED_PRECONDITION,
    Reason.REBALANCE_IN_PROGRESS: _C.ABORTED,
    Reason.AUTHENTICATION_FAILED: _C.UNAUTHENTICATED,
    Reason.SESSION_EXPIRED: _C.UNAUTHENTICATED,
    Reason.UNSUPPORTED_SASL_MECHANISM: _C.INVALID_ARGUMENT,
    Reason.USER_NOT_FOUND: _C.NOT_FOUND,
    Reason.USER_ALREADY_EXISTS: _C.ALREADY_EXISTS,
    Reason.INVALID_ACL: _C.INVALID_ARGUMENT,
    Reason.TOPIC_AUTHORIZATION_FAILED: _C.PERMISSION_DENIED,
    Reason.GROUP_AUTHORIZATION_FAILED: _C.PERMISSION_DENIED,
    Reason.CLUSTER_AUTHORIZATION_FAILED: _C.PERMISSION_DENIED,
    Reason.PRODUCER_NAME_AUTHORIZATION_FAILED: _C.PERMISSION_DENIED,
}


def status_code(error: BrokerError) -> grpc.StatusCode:
    return STATUS_CODES.get(error.reason, grpc.StatusCode.UNKNOWN)


# A status travels in the response's trailers, which clients cap (gRPC: 16 KiB by
# default, the message twice over with its details): messages and metadata that quote
# what a client sent are cut, or the client would see "metadata size exceeds hard limit"
# instead of the answer.
MAX_MESSAGE_CHARS = 1000
MAX_METADATA_CHARS = 300
MAX_METADATA_ENTRIES = 16


def to_status(error: BrokerError) -> grpc.Status:
    metadata = {clip(k, MAX_METADATA_CHARS): clip(v, MAX_METADATA_CHARS)
                for k, v in list(error.metadata.items())[:MAX_METADATA_ENTRIES]}
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=getattr(code_pb2, status_code(error).name),
                               message=clip(error.message, MAX_MESSAGE_CHARS),
                               details=[detail])
    return rpc_status.to_status(status)


def from_rpc_error(exc: grpc.aio.AioRpcError, unreachable: Reason = Reason.INTERNAL,
                   ) -> BrokerError:
    """What another broker answered, as the BrokerError it raised (its ErrorInfo's
    reason and metadata); a status without one (the peer was not reached, or no answer
    came in time) gets ``unreachable``, with gRPC's own words."""
    status = rpc_status.from_call(exc)
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.domain == DOMAIN:
            try:
                reason = Reason(info.reason)
            except ValueError:  # a newer broker's reason: keep its words
                reason = Reason.INTERNAL
            return BrokerError(reason, exc.details() or info.reason, dict(info.metadata))
    retriable = exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    return BrokerError(unreachable if retriable else Reason.INTERNAL,
                       f"{exc.code().name.lower()}: {exc.details() or 'no details'}")
