"""Errors the client raises: one exception type per machine-readable reason.

The broker answers a failed call with a gRPC status whose details hold a
google.rpc.ErrorInfo (domain "odradek.io"); `from_rpc_error` turns that into an
`OdradekError` subclass chosen by the ErrorInfo's `reason`. Calls that fail before
reaching a broker (connection refused, deadline) get the gRPC status code's name as
their reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

DOMAIN = "odradek.io"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

# Reasons after which the same request may succeed later, usually once metadata is fresh.
RETRIABLE_REASONS = frozenset({
    "NOT_LEADER",
    "LEADER_NOT_AVAILABLE",
    "NOT_ENOUGH_REPLICAS",
    "REQUEST_TIMED_OUT",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "ABORTED",
    "RESOURCE_EXHAUSTED",
    "NOT_COORDINATOR",
    "COORDINATOR_NOT_AVAILABLE",
    "COORDINATOR_LOAD_IN_PROGRESS",
    "OFFSET_NOT_AVAILABLE",
    "REBALANCE_IN_PROGRESS",
    "KAFKA_STORAGE_ERROR",
})
# Reasons that mean the client's view of where a partition lives is stale.
METADATA_REASONS = frozenset({
    "NOT_LEADER", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PARTITION", "UNAVAILABLE",
    "OFFSET_NOT_AVAILABLE", "KAFKA_STORAGE_ERROR",
})


class OdradekError(Exception):
    """A failed call. `reason` is machine-readable (e.g. NOT_LEADER); `code` is the gRPC
    status code when there is one; `metadata` holds context such as a leader address."""

    default_reason = "UNKNOWN"

    def __init__(
        self,
        message: str,
        reason: str | None = None,
        code: grpc.StatusCode | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.code = code
        self.metadata: dict[str, str] = dict(metadata or {})

    @property
    def retriable(self) -> bool:
        return self.reason in RETRIABLE_REASONS

    @property
    def invalidates_metadata(self) -> bool:
        return self.reason in METADATA_REASONS

    @property
    def leader_hint(self) -> str | None:
        """The leader's host:port when the broker named it (with NOT_LEADER)."""
        return self.metadata.get("leader") or None

    def __str__(self) -> str:
        return f"{self.message} ({self.reason})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"


class UnknownTopicOrPartitionError(OdradekError):
    default_reason = "UNKNOWN_TOPIC_OR_PARTITION"


class NotLeaderError(OdradekError):
    default_reason = "NOT_LEADER"


class LeaderNotAvailableError(OdradekError):
    default_reason = "LEADER_NOT_AVAILABLE"


class CorruptRecordError(OdradekError):
    default_reason = "CORRUPT_RECORD"


class InvalidRecordError(OdradekError):
    default_reason = "INVALID_RECORD"


class RecordTooLargeError(OdradekError):
    default_reason = "RECORD_TOO_LARGE"


class UnsupportedMagicError(OdradekError):
    default_reason = "UNSUPPORTED_MAGIC"


class InvalidTopicError(OdradekError):
    default_reason = "INVALID_TOPIC"


class TopicAlreadyExistsError(OdradekError):
    default_reason = "TOPIC_ALREADY_EXISTS"


class InvalidConfigError(OdradekError):
    default_reason = "INVALID_CONFIG"


class InvalidPartitionsError(OdradekError):
    default_reason = "INVALID_PARTITIONS"


class OffsetOutOfRangeError(OdradekError):
    default_reason = "OFFSET_OUT_OF_RANGE"


class OffsetNotAvailableError(OdradekError):
    """A new leader has not caught up its high watermark yet: retry."""

    default_reason = "OFFSET_NOT_AVAILABLE"


class InvalidRequestError(OdradekError):
    default_reason = "INVALID_REQUEST"


class UnavailableError(OdradekError):
    """No broker answered (connection refused, broker down)."""

    default_reason = "UNAVAILABLE"


class RequestTimeoutError(OdradekError):
    """A call or a delivery ran past its deadline."""

    default_reason = "DEADLINE_EXCEEDED"


class PermissionDeniedError(OdradekError):
    default_reason = "PERMISSION_DENIED"


class AuthenticationFailedError(OdradekError):
    """SCRAM refused the credentials (an unknown user and a wrong password look alike)."""

    default_reason = "AUTHENTICATION_FAILED"


class ClientClosedError(OdradekError):
    default_reason = "CLIENT_CLOSED"


class OutOfOrderSequenceError(OdradekError):
    """The partition refused an idempotent batch whose sequence skips ahead: an earlier
    batch of this producer was lost. The producer starts a new producer id for what
    follows; the refused records are not stored."""

    default_reason = "OUT_OF_ORDER_SEQUENCE"


class ProducerFencedError(OdradekError):
    """A newer instance of this named producer has started: this one may send nothing
    more (close it)."""

    default_reason = "PRODUCER_FENCED"


class CommitFailedError(OdradekError):
    """The group took the partition away (or removed the member) before the commit."""

    default_reason = "FENCED_MEMBER"


class GroupNotEmptyError(OdradekError):
    default_reason = "NON_EMPTY_GROUP"


class GroupNotFoundError(OdradekError):
    default_reason = "GROUP_ID_NOT_FOUND"


_BY_REASON: dict[str, type[OdradekError]] = {
    cls.default_reason: cls
    for cls in (
        UnknownTopicOrPartitionError, NotLeaderError, LeaderNotAvailableError,
        CorruptRecordError, InvalidRecordError, RecordTooLargeError, UnsupportedMagicError,
        InvalidTopicError, TopicAlreadyExistsError, InvalidConfigError,
        InvalidPartitionsError, OffsetOutOfRangeError, OffsetNotAvailableError,
        InvalidRequestError, UnavailableError,
        RequestTimeoutError, PermissionDeniedError, ClientClosedError,
        AuthenticationFailedError, OutOfOrderSequenceError, ProducerFencedError,
        CommitFailedError, GroupNotEmptyError, GroupNotFoundError,
    )
}
_BY_REASON["ILLEGAL_GENERATION"] = _BY_REASON["UNKNOWN_MEMBER_ID"] = CommitFailedError
# The broker names what was refused (as Kafka's error codes do); all are PERMISSION_DENIED.
_BY_REASON.update(dict.fromkeys(("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED",
                                 "CLUSTER_AUTHORIZATION_FAILED"), PermissionDeniedError))


def error_class(reason: str) -> type[OdradekError]:
    return _BY_REASON.get(reason, OdradekError)


def make_error(
    reason: str,
    message: str,
    code: grpc.StatusCode | None = None,
    metadata: Mapping[str, str] | None = None,
) -> OdradekError:
    return error_class(reason)(message, reason, code, metadata)


def _error_info(trailing: Iterable[tuple[str, Any]] | None) -> error_details_pb2.ErrorInfo | None:
    if not trailing:
        return None
    for key, value in trailing:
        if key != STATUS_DETAILS_KEY:
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except Exception:  # noqa: BLE001 - a garbled detail must not hide the status
            return None
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return info
    return None


def from_rpc_error(exc: grpc.RpcError) -> OdradekError:
    """Turns a failed gRPC call (sync or aio) into the matching OdradekError."""
    code: grpc.StatusCode | None = None
    message = str(exc)
    trailing = None
    if isinstance(exc, grpc.Call) or hasattr(exc, "code"):
        code = exc.code()
        message = exc.details() or (code.name if code else "")
        trailing = exc.trailing_metadata()
    info = _error_info(trailing)
    if info is not None and info.reason:
        return make_error(info.reason, message, code, dict(info.metadata))
    reason = code.name if code is not None else "UNKNOWN"
    if code is grpc.StatusCode.UNAVAILABLE:
        message = f"broker unavailable: {message}"
    return make_error(reason, message, code)
