"""Topic resources through `odradek operator` against the kmock API and 3 real brokers:
creation, the truth in status, drift reverted, a partition decrease refused, a config the
brokers refuse, a second claimant in conflict, RF change by reassignment, deletion (and
the retain annotation)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import kmock
import pytest

from odradek.client import Admin, UnknownTopicOrPartitionError
from tests.brokers import ClusterProcesses
from tests.kube import (
    OdradekKube,
    OperatorProcess,
    apply,
    eventually,
    manifest,
    objects_of,
    patch_spec,
    ready,
    resource_url,
    stored,
    wait_ready,
)
from tests.operator_fixtures import WAIT_S, running_operator

pytestmark = [pytest.mark.slow, pytest.mark.kmock(cls=OdradekKube)]


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcesses]:
    cluster = ClusterProcesses(tmp_path_factory.mktemp("op-topics"), 3)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
async def admin(brokers: ClusterProcesses) -> AsyncIterator[Admin]:
    async with Admin(brokers.bootstrap) as a:
        yield a


@pytest.fixture
async def operator(kmock: kmock.KubernetesEmulator, brokers: ClusterProcesses,
                   tmp_path: Path) -> AsyncIterator[OperatorProcess]:
    async with running_operator(kmock, tmp_path, brokers.bootstrap) as proc:
        yield proc


async def configs(admin: Admin, topic: str) -> dict[str, str]:
    desc = await admin.describe_topic(topic)
    return {c.name: c.value for c in desc.configs if not c.is_default}


async def test_topic_lifecycle(kmock: kmock.KubernetesEmulator, operator: OperatorProcess,
                               admin: Admin) -> None:
    await apply(kmock, manifest("Topic", "orders", {
        "partitions": 3, "replicationFactor": 3,
        "config": {"retention.ms": 86400000, "cleanup.policy": "delete"}}))
    obj = await wait_ready(kmock, operator, "Topic", "orders")
    desc = await admin.describe_topic("orders")
    assert len(desc.partitions) == 3
    assert await configs(admin, "orders") == {"retention.ms": "86400000",
                                              "cleanup.policy": "delete"}
    # Status tells the truth: the brokers' partitions, leaders and replicas.
    assert obj["status"]["topicName"] == "orders"
    assert obj["status"]["topicId"] == desc.topic_id
    assert [(p["partition"], len(p["replicas"])) for p in obj["status"]["partitions"]] == [
        (0, 3), (1, 3), (2, 3)]
    assert all(p["leader"] in p["replicas"] for p in obj["status"]["partitions"])
    assert "odradek.io/finalizer" in obj["metadata"]["finalizers"]

    # Drift made with the client is reverted by the resync timer.
    await admin.alter_configs("orders", {"retention.ms": "1000", "segment.ms": "60000"})

    async def reverted() -> bool:
        return await configs(admin, "orders") == {"retention.ms": "86400000",
                                                  "cleanup.policy": "delete"}

    await eventually(reverted, WAIT_S, "config drift reverted", operator.log)

    # More partitions and a config change from the resource.
    await patch_spec(kmock, "Topic", "orders", {"partitions": 5, "config": {
        "retention.ms": 3600000, "cleanup.policy": "delete"}})
    await wait_ready(kmock, operator, "Topic", "orders")
    assert len((await admin.describe_topic("orders")).partitions) == 5
    assert (await configs(admin, "orders"))["retention.ms"] == "3600000"

    # A decrease is refused with a condition and changes nothing (not even the config).
    await patch_spec(kmock, "Topic", "orders", {"partitions": 2, "config": {
        "retention.ms": 7, "cleanup.policy": "delete"}})
    obj = await wait_ready(kmock, operator, "Topic", "orders", "False", "PartitionsDecreaseRefused")
    assert len((await admin.describe_topic("orders")).partitions) == 5
    assert (await configs(admin, "orders"))["retention.ms"] == "3600000"
    assert len(obj["status"]["partitions"]) == 5

    # Deleting the resource deletes the topic (the finalizer).
    reply = await kmock.delete(resource_url("Topic", "orders"))
    assert reply.status == 200

    async def gone() -> bool:
        try:
            await admin.describe_topic("orders")
        except UnknownTopicOrPartitionError:
            return stored(kmock, "Topic", "orders") is None
        return False

    await eventually(gone, WAIT_S, "topic deleted and resource released", operator.log)

    # The operator's own metrics count the reconciles, refusals and durations per kind.
    metrics = await operator.scrape()
    assert 'odradek_operator_reconciles_total{kind="Topic",result="ok"}' in metrics
    assert ('odradek_operator_reconcile_errors_total{kind="Topic",'
            'reason="PartitionsDecreaseRefused"}') in metrics
    assert 'odradek_operator_reconcile_duration_seconds_count{kind="Topic"}' in metrics


async def test_refusals_conflicts_and_retention(
        kmock: kmock.KubernetesEmulator, operator: OperatorProcess, admin: Admin) -> None:
    # A value only the brokers can judge: a condition with their message, an Event, and
    # no topic.
    await apply(kmock, manifest("Topic", "bad-config", {
        "partitions": 1, "replicationFactor": 1, "config": {"retention.ms": "soon"}}))
    obj = await wait_ready(kmock, operator, "Topic", "bad-config", "False", "InvalidConfig")
    assert "retention.ms" in ready(obj)["message"]  # type: ignore[index]
    with pytest.raises(UnknownTopicOrPartitionError):
        await admin.describe_topic("bad-config")

    async def warned() -> bool:
        events = objects_of(kmock, "v1/events")
        return any(e.get("reason") == "InvalidConfig"
                   and e.get("involvedObject", {}).get("name") == "bad-config" for e in events)

    await eventually(warned, WAIT_S, "a Warning event for bad-config", operator.log)

    # Two resources claiming one topic: the second gets ResourceConflict, changes nothing.
    await apply(kmock, manifest("Topic", "payments", {
        "partitions": 2, "replicationFactor": 1, "config": {"retention.ms": 60000}},
        annotations={"odradek.io/retain-on-delete": "true"}))
    await wait_ready(kmock, operator, "Topic", "payments")
    await apply(kmock, manifest("Topic", "payments-again", {
        "topicName": "payments", "partitions": 4, "replicationFactor": 1,
        "config": {"retention.ms": 1}}))
    await wait_ready(kmock, operator, "Topic", "payments-again", "False", "ResourceConflict")
    assert len((await admin.describe_topic("payments")).partitions) == 2
    assert (await configs(admin, "payments"))["retention.ms"] == "60000"

    # The replication factor changes by reassignment.
    await patch_spec(kmock, "Topic", "payments", {"replicationFactor": 3})

    async def three_replicas() -> bool:
        desc = await admin.describe_topic("payments")
        return all(len(p.info.replicas) == 3 and not p.info.target_replicas
                   for p in desc.partitions)

    await eventually(three_replicas, WAIT_S, "replication factor 3", operator.log)
    await wait_ready(kmock, operator, "Topic", "payments")

    # The conflicting resource goes away without touching the topic; the retained one
    # leaves the topic in the brokers.
    await kmock.delete(resource_url("Topic", "payments-again"))
    await kmock.delete(resource_url("Topic", "payments"))

    async def released() -> bool:
        return (stored(kmock, "Topic", "payments") is None
                and stored(kmock, "Topic", "payments-again") is None)

    await eventually(released, WAIT_S, "both resources deleted", operator.log)
    assert len((await admin.describe_topic("payments")).partitions) == 2
    await admin.delete_topic("payments")
