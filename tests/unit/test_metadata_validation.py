"""Validation of user requests against the image, and the controller's plan_* functions."""

from __future__ import annotations

import pytest

from odradek.broker.metadata.commands import (
    Command,
    CreatePartitions,
    CreateTopic,
    ReassignPartition,
    RegisterBroker,
    SetBrokerDraining,
    freeze_configs,
)
from odradek.broker.metadata.controller import (
    plan_create_partitions,
    plan_create_topic,
    plan_drain,
    plan_reassignment,
)
from odradek.broker.metadata.image import MetadataImage, apply, replay
from odradek.broker.metadata.validation import (
    MetadataError,
    Reason,
    validate_alter_topic_configs,
    validate_create_partitions,
    validate_create_topic,
    validate_delete_topic,
    validate_drain,
    validate_reassignment,
)


def build(*commands: Command) -> MetadataImage:
    return replay(MetadataImage(), enumerate(commands))


def cluster() -> MetadataImage:
    """Brokers 1-3 (3 draining), topic 'orders' (2 partitions, RF 2)."""
    return build(
        RegisterBroker(1, "h1", 9092), RegisterBroker(2, "h2", 9092),
        RegisterBroker(3, "h3", 9092), SetBrokerDraining(3, True),
        CreateTopic("orders", "id-o", ((1, 2), (2, 3))),
    )


def check(exc: pytest.ExceptionInfo[MetadataError], reason: Reason) -> None:
    assert exc.value.reason is reason
    assert exc.value.reason == reason.value  # usable as a plain string


def test_create_topic_ok() -> None:
    validate_create_topic(cluster(), "new", 3, 2)


@pytest.mark.parametrize(("name", "partitions", "rf", "reason", "message"), [
    ("orders", 1, 1, Reason.TOPIC_ALREADY_EXISTS, "topic 'orders' already exists"),
    ("new", 0, 1, Reason.INVALID_PARTITIONS,
     r"number of partitions must be at least 1, got 0 \(topic 'new'\)"),
    ("new", 1, 0, Reason.INVALID_REPLICATION_FACTOR,
     r"replication factor must be at least 1, got 0 \(topic 'new'\)"),
    ("new", 1, 3, Reason.INVALID_REPLICATION_FACTOR,
     r"replication factor 3 for topic 'new' is larger than the 2 brokers available, "
     r"1 draining broker excluded"),
])
def test_create_topic_errors(name: str, partitions: int, rf: int, reason: Reason,
                             message: str) -> None:
    with pytest.raises(MetadataError, match=message) as exc:
        validate_create_topic(cluster(), name, partitions, rf)
    check(exc, reason)
    assert exc.value.metadata["topic"] == name


@pytest.mark.parametrize(("assignments", "reason", "message"), [
    ([[1, 2]], Reason.INVALID_REPLICA_ASSIGNMENT, "2 partitions to create but 1 replica list"),
    ([[1, 2], [1]], Reason.INVALID_REPLICA_ASSIGNMENT, "replica lists of sizes 1, 2"),
    ([[1, 1], [1, 2]], Reason.INVALID_REPLICA_ASSIGNMENT,
     r"replica list \[1, 1\] for partition 0 of topic 'new' names broker 1 more than once"),
    ([[1, 2], []], Reason.INVALID_REPLICA_ASSIGNMENT,
     "replica list for partition 1 of topic 'new' is empty"),
    ([[1, 2], [2, 9]], Reason.BROKER_NOT_AVAILABLE,
     r"\[2, 9\] for partition 1 of topic 'new' names broker 9, which is not registered"),
    ([[1, 3], [2, 1]], Reason.BROKER_NOT_AVAILABLE, "names broker 3, which is draining"),
])
def test_create_topic_with_explicit_assignments(
        assignments: list[list[int]], reason: Reason, message: str) -> None:
    validate_create_topic(cluster(), "new", 2, 0, [[1, 2], [2, 1]])
    with pytest.raises(MetadataError, match=message) as exc:
        validate_create_topic(cluster(), "new", 2, 0, assignments)
    check(exc, reason)


def test_create_partitions() -> None:
    image = cluster()
    validate_create_partitions(image, "orders", 3)
    with pytest.raises(MetadataError, match="topic 'missing' does not exist") as exc:
        validate_create_partitions(image, "missing", 3)
    check(exc, Reason.UNKNOWN_TOPIC_OR_PARTITION)
    with pytest.raises(MetadataError, match=r"topic 'orders' has 2 partitions; the new total "
                       r"must be larger, got 2") as exc:
        validate_create_partitions(image, "orders", 2)
    check(exc, Reason.INVALID_PARTITIONS)
    # RF 2 no longer fits once broker 2 drains too.
    image = apply(image, 50, SetBrokerDraining(2, True))
    with pytest.raises(MetadataError, match="replication factor 2 for topic 'orders' is larger "
                       "than the 1 broker available") as exc:
        validate_create_partitions(image, "orders", 3)
    check(exc, Reason.INVALID_REPLICATION_FACTOR)
    validate_create_partitions(cluster(), "orders", 3, [[2, 1]])
    with pytest.raises(MetadataError, match="partition 2 of topic 'orders' names broker 7"):
        validate_create_partitions(cluster(), "orders", 3, [[7, 1]])
    with pytest.raises(MetadataError, match="topic 'orders' has replication factor 2; the "
                       "replica lists of new partitions must have 2 replicas, got 1") as exc:
        validate_create_partitions(cluster(), "orders", 4, [[1], [2]])
    check(exc, Reason.INVALID_REPLICA_ASSIGNMENT)


def test_reassignment() -> None:
    image = cluster()
    validate_reassignment(image, "orders", 0, [2, 1])
    validate_reassignment(image, "orders", 1, [3, 1])   # 3 drains but already holds it
    cases: list[tuple[str, int, list[int], Reason, str]] = [
        ("missing", 0, [1], Reason.UNKNOWN_TOPIC_OR_PARTITION, "topic 'missing' does not exist"),
        ("orders", 2, [1], Reason.UNKNOWN_TOPIC_OR_PARTITION,
         r"partition 2 of topic 'orders' does not exist \(the topic has 2 partitions\)"),
        ("orders", 0, [], Reason.INVALID_REPLICA_ASSIGNMENT, "is empty"),
        ("orders", 0, [1, 2, 1], Reason.INVALID_REPLICA_ASSIGNMENT, "names broker 1 more than"),
        ("orders", 0, [1, 4], Reason.BROKER_NOT_AVAILABLE, "broker 4, which is not registered"),
        ("orders", 0, [1, 3], Reason.BROKER_NOT_AVAILABLE, "broker 3, which is draining"),
    ]
    for topic, partition, replicas, reason, message in cases:
        with pytest.raises(MetadataError, match=message) as exc:
            validate_reassignment(image, topic, partition, replicas)
        check(exc, reason)


def test_drain() -> None:
    image = build(*(RegisterBroker(i, "h", 1) for i in range(1, 5)),
                  CreateTopic("t", "id", ((1, 2, 3), (2, 3, 4))))
    validate_drain(image, 1)
    with pytest.raises(MetadataError, match="broker 9 is not registered") as exc:
        validate_drain(image, 9)
    check(exc, Reason.BROKER_NOT_AVAILABLE)
    image = apply(image, 10, SetBrokerDraining(4, True))
    with pytest.raises(MetadataError, match="cannot drain broker 1: partition 0 of topic 't' "
                       "has replication factor 3 and only 2 other brokers available") as exc:
        validate_drain(image, 1)
    check(exc, Reason.INVALID_REPLICATION_FACTOR)


def test_delete_and_alter_need_the_topic() -> None:
    validate_delete_topic(cluster(), "orders")
    validate_alter_topic_configs(cluster(), "orders")
    for fn in (validate_delete_topic, validate_alter_topic_configs):
        with pytest.raises(MetadataError, match="topic 'nope' does not exist") as exc:
            fn(cluster(), "nope")
        check(exc, Reason.UNKNOWN_TOPIC_OR_PARTITION)


# --- controller ------------------------------------------------------------------------

def test_plan_create_topic_places_by_load() -> None:
    image = build(*(RegisterBroker(i, "h", 1) for i in range(3)),
                  CreateTopic("a", "id-a", ((0, 1),)))
    cmd = plan_create_topic(image, "b", "id-b", 2, 2, {"retention.ms": "5"})
    assert cmd == CreateTopic("b", "id-b", ((2, 0), (1, 2)), freeze_configs({"retention.ms": "5"}))
    with pytest.raises(MetadataError):
        plan_create_topic(image, "a", "id-x", 1, 1)
    assert plan_create_topic(image, "c", "id-c", 1, 0, assignments=[[1, 0]]).assignments == (
        (1, 0),)


def test_plan_create_partitions_keeps_the_rf_and_numbers_on() -> None:
    image = build(*(RegisterBroker(i, "h", 1) for i in range(3)),
                  CreateTopic("a", "id-a", ((0, 1), (1, 2))))
    cmd = plan_create_partitions(image, "a", 4)
    assert isinstance(cmd, CreatePartitions) and len(cmd.new_assignments) == 2
    assert all(len(r) == 2 for r in cmd.new_assignments)
    after = apply(image, 10, cmd)
    counts = after.replica_counts()
    assert max(counts.values()) - min(counts.values()) <= 1


def test_plan_reassignment_and_drain() -> None:
    image = build(*(RegisterBroker(i, "h", 1) for i in range(3)),
                  CreateTopic("a", "id-a", ((0, 1),)))
    assert plan_reassignment(image, "a", 0, [2, 1]) == ReassignPartition("a", 0, (2, 1))
    assert plan_drain(image, 0) == [SetBrokerDraining(0, True), ReassignPartition("a", 0, (2, 1))]
    drained = apply(image, 10, SetBrokerDraining(0, True))
    assert plan_drain(drained, 0) == [ReassignPartition("a", 0, (2, 1))]
