"""Broker errors: a reason for programs (one of `Reason`), a message for people, and
metadata that gives context (topic, partition, leader address).

Domain code raises BrokerError (or a storage, records or metadata error that
`to_broker_error` knows). It knows no protocol: each front end maps the reason to its own
codes (grpc/status.py for gRPC)."""

from __future__ import annotations

from odradek.broker.metadata.validation import MetadataError
from odradek.broker.reasons import Reason, reason_of
from odradek.records import InvalidRecordError
from odradek.storage import ConfigError, OffsetOutOfRangeError

__all__ = ["BrokerError", "Reason", "invalid_request", "to_broker_error", "unknown_topic"]


class BrokerError(Exception):
    def __init__(self, reason: Reason, message: str,
                 metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata = metadata or {}


def unknown_topic(topic: str, partition: int | None = None) -> BrokerError:
    where = f"topic {topic!r}" if partition is None else f"partition {partition} of topic {topic!r}"
    meta = {"topic": topic}
    if partition is not None:
        meta["partition"] = str(partition)
    return BrokerError(Reason.UNKNOWN_TOPIC_OR_PARTITION, f"{where} does not exist", meta)


def invalid_request(message: str) -> BrokerError:
    return BrokerError(Reason.INVALID_REQUEST, message)


def to_broker_error(exc: Exception) -> BrokerError | None:
    """Maps the lower layers' exceptions to broker errors; None for unexpected ones."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, InvalidRecordError):
        return BrokerError(reason_of(exc.reason), str(exc))
    if isinstance(exc, ConfigError):
        return BrokerError(Reason.INVALID_CONFIG, str(exc))
    if isinstance(exc, MetadataError):
        return BrokerError(exc.reason, exc.message, exc.metadata)
    if isinstance(exc, OffsetOutOfRangeError):
        return BrokerError(Reason.OFFSET_OUT_OF_RANGE, str(exc))
    return None


class ListenError(OSError):
    """A listener's port cannot be bound; the message says which and why."""
