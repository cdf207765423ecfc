"""Broker errors: a gRPC status code, a message for people and a reason for programs.

Domain code raises BrokerError (or a storage error that `to_broker_error` knows); only the
gRPC layer turns it into a status, so other front ends can map it their own way."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from odradek.broker.metadata.validation import MetadataError, Reason
from odradek.records import InvalidRecordError
from odradek.storage import ConfigError, OffsetOutOfRangeError

DOMAIN = "odradek.io"


class BrokerError(Exception):
    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = metadata or {}

    def to_status(self) -> grpc.Status:
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=DOMAIN, metadata=self.metadata)
        detail = any_pb2.Any()
        detail.Pack(info)
        status = status_pb2.Status(
            code=getattr(code_pb2, self.code.name), message=self.message, details=[detail])
        return rpc_status.to_status(status)


def unknown_topic(topic: str, partition: int | None = None) -> BrokerError:
    where = f"topic {topic!r}" if partition is None else f"partition {partition} of topic {topic!r}"
    meta = {"topic": topic}
    if partition is not None:
        meta["partition"] = str(partition)
    return BrokerError(
        grpc.StatusCode.NOT_FOUND, "UNKNOWN_TOPIC_OR_PARTITION", f"{where} does not exist", meta)


def invalid_request(message: str) -> BrokerError:
    return BrokerError(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST", message)


def to_broker_error(exc: Exception) -> BrokerError | None:
    """Maps the lower layers' exceptions to statuses; None for unexpected ones."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, InvalidRecordError):
        return BrokerError(grpc.StatusCode.INVALID_ARGUMENT, exc.reason, str(exc))
    if isinstance(exc, ConfigError):
        return BrokerError(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CONFIG", str(exc))
    if isinstance(exc, MetadataError):
        code = _METADATA_CODES.get(exc.reason, grpc.StatusCode.INVALID_ARGUMENT)
        return BrokerError(code, str(exc.reason), exc.message, exc.metadata)
    if isinstance(exc, OffsetOutOfRangeError):
        return BrokerError(grpc.StatusCode.OUT_OF_RANGE, "OFFSET_OUT_OF_RANGE", str(exc))
    return None


_METADATA_CODES = {
    Reason.TOPIC_ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    Reason.UNKNOWN_TOPIC_OR_PARTITION: grpc.StatusCode.NOT_FOUND,
    Reason.BROKER_NOT_AVAILABLE: grpc.StatusCode.FAILED_PRECONDITION,
}
