"""Broker error reasons as Kafka error codes: the one table of the Kafka front end (the
gRPC front end's is grpc/status.py). Codes are Kafka's (kio.schema.errors.ErrorCode)."""

from __future__ import annotations

import logging

from odradek.broker.errors import BrokerError, to_broker_error
from odradek.broker.reasons import Reason

log = logging.getLogger("odradek.broker.kafka")

NONE = 0
UNKNOWN_SERVER_ERROR = -1
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
NOT_COORDINATOR = 16
INVALID_REQUIRED_ACKS = 21
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
UNKNOWN_MEMBER_ID = 25
REBALANCE_IN_PROGRESS = 27
TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
UNSUPPORTED_SASL_MECHANISM = 33
ILLEGAL_SASL_STATE = 34
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
SASL_AUTHENTICATION_FAILED = 58
MEMBER_ID_REQUIRED = 79
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
UNKNOWN_TOPIC_ID = 100
FENCED_MEMBER_EPOCH = 110
UNSUPPORTED_ASSIGNOR = 112

KAFKA_CODES: dict[Reason, int] = {
    Reason.INVALID_REQUEST: INVALID_REQUEST,
    Reason.INTERNAL: UNKNOWN_SERVER_ERROR,
    Reason.THROTTLED: 89,  # THROTTLING_QUOTA_EXCEEDED
    Reason.DISK_FULL: 56,  # KAFKA_STORAGE_ERROR: retriable, as a full disk may clear
    Reason.KAFKA_STORAGE_ERROR: 56,  # retriable: the leader moves, the replica repairs
    Reason.INVALID_RECORD: 87,
    Reason.CORRUPT_RECORD: 2,  # CORRUPT_MESSAGE
    Reason.RECORD_TOO_LARGE: 10,  # MESSAGE_TOO_LARGE
    Reason.UNSUPPORTED_MAGIC: 43,  # UNSUPPORTED_FOR_MESSAGE_FORMAT
    Reason.UNKNOWN_TOPIC_OR_PARTITION: UNKNOWN_TOPIC_OR_PARTITION,
    Reason.TOPIC_ALREADY_EXISTS: 36,
    Reason.INVALID_TOPIC: 17,  # INVALID_TOPIC_EXCEPTION
    Reason.INVALID_PARTITIONS: 37,
    Reason.INVALID_REPLICATION_FACTOR: 38,
    Reason.INVALID_REPLICA_ASSIGNMENT: 39,
    Reason.INVALID_CONFIG: 40,
    Reason.BROKER_NOT_AVAILABLE: 8,
    Reason.NOT_LEADER: NOT_LEADER_OR_FOLLOWER,
    Reason.LEADER_NOT_AVAILABLE: 5,
    Reason.NOT_ENOUGH_REPLICAS: 19,
    Reason.NOT_CONTROLLER: 41,
    Reason.PREFERRED_LEADER_NOT_AVAILABLE: 80,
    Reason.REASSIGNMENT_IN_PROGRESS: 60,
    Reason.OFFSET_OUT_OF_RANGE: 1,
    Reason.OFFSET_NOT_AVAILABLE: 78,
    Reason.OUT_OF_ORDER_SEQUENCE: 45,  # OUT_OF_ORDER_SEQUENCE_NUMBER
    # Kafka answers a fenced idempotent (not transactional) producer so.
    Reason.PRODUCER_FENCED: 47,  # INVALID_PRODUCER_EPOCH
    Reason.INVALID_GROUP_ID: 24,
    Reason.GROUP_ID_NOT_FOUND: 69,
    Reason.NOT_COORDINATOR: NOT_COORDINATOR,
    Reason.COORDINATOR_NOT_AVAILABLE: 15,
    Reason.COORDINATOR_LOAD_IN_PROGRESS: 14,
    Reason.UNKNOWN_MEMBER_ID: UNKNOWN_MEMBER_ID,
    Reason.ILLEGAL_GENERATION: ILLEGAL_GENERATION,
    # Odradek's "member does not own the partition": a classic client rejoins on it.
    Reason.FENCED_MEMBER: ILLEGAL_GENERATION,
    Reason.FENCED_INSTANCE_ID: 82,
    Reason.INCONSISTENT_GROUP_PROTOCOL: INCONSISTENT_GROUP_PROTOCOL,
    Reason.INVALID_SESSION_TIMEOUT: 26,
    Reason.NON_EMPTY_GROUP: 68,
    Reason.REBALANCE_IN_PROGRESS: REBALANCE_IN_PROGRESS,
    Reason.AUTHENTICATION_FAILED: SASL_AUTHENTICATION_FAILED,
    Reason.SESSION_EXPIRED: SASL_AUTHENTICATION_FAILED,
    Reason.UNSUPPORTED_SASL_MECHANISM: UNSUPPORTED_SASL_MECHANISM,
    Reason.USER_NOT_FOUND: 91,  # RESOURCE_NOT_FOUND
    Reason.USER_ALREADY_EXISTS: 92,  # DUPLICATE_RESOURCE
    Reason.INVALID_ACL: INVALID_REQUEST,
    Reason.TOPIC_AUTHORIZATION_FAILED: TOPIC_AUTHORIZATION_FAILED,
    Reason.GROUP_AUTHORIZATION_FAILED: GROUP_AUTHORIZATION_FAILED,
    Reason.CLUSTER_AUTHORIZATION_FAILED: CLUSTER_AUTHORIZATION_FAILED,
    Reason.REQUEST_TOO_LARGE: 10,  # MESSAGE_TOO_LARGE
    Reason.PRODUCER_NAME_AUTHORIZATION_FAILED: 53,  # TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    Reason.TOO_MANY_PRODUCER_NAMES: 44,  # POLICY_VIOLATION
}


def kafka_code(reason: Reason) -> int:
    return KAFKA_CODES.get(reason, UNKNOWN_SERVER_ERROR)


def error_of(exc: Exception, where: str) -> tuple[int, str]:
    """The Kafka error code and message for what a domain call raised; an exception no
    lower layer knows is logged and answered UNKNOWN_SERVER_ERROR."""
    error = to_broker_error(exc)
    if error is None:
        log.error("unexpected error in %s", where, exc_info=exc)
        error = BrokerError(Reason.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
    return kafka_code(error.reason), error.message
