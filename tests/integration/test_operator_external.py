"""A Cluster's external listener through `odradek operator` against kmock, with real
brokers run by the test kubelet: each broker gets a NodePort Service and advertises its
outside address (here another loopback address, a port per pod), so gRPC and Kafka
clients that come in from outside are sent only to outside addresses, group coordinator
included; removing the listener deletes its Services."""

from __future__ import annotations

import asyncio
from pathlib import Path

import kmock
import pytest
from confluent_kafka.admin import AdminClient

from odradek.client import Admin, Consumer, Producer
from tests.kube import OdradekKube, eventually, manifest, objects_of, patch_spec, wait_ready
from tests.kube import apply as kube_apply
from tests.operator_fixtures import WAIT_S, running_operator
from tests.operator_kubelet import Kubelet

pytestmark = [pytest.mark.slow, pytest.mark.kmock(cls=OdradekKube)]

SPEC = {"brokers": 3, "listeners": {"external": {
    "type": "NodePort", "nodePortBase": 31090, "kafkaPort": 9095}}}


def external_services(kube: kmock.KubernetesEmulator) -> list[str]:
    return sorted(s["metadata"]["name"] for s in objects_of(kube, "v1/services")
                  if (s["metadata"].get("labels") or {}).get("odradek.io/listener"))


async def test_outside_clients_are_sent_to_outside_addresses(
        kmock: kmock.KubernetesEmulator, tmp_path: Path) -> None:
    async with Kubelet(kmock, tmp_path / "pods") as kubelet, running_operator(
            kmock, tmp_path, kubelet.bootstrap("events", 3)) as op:
        await kube_apply(kmock, manifest("Cluster", "events", SPEC))
        await wait_ready(kmock, op, "Cluster", "events", timeout=3 * WAIT_S)
        assert external_services(kmock) == [
            "events-0-external", "events-1-external", "events-2-external",
            "events-external-bootstrap"]
        outside = [kubelet.outside_address(f"events-{i}", "external") for i in range(3)]
        async with Admin(outside[0]) as admin:
            await admin.create_topic("outside", 3, 3)
            metadata = await admin.metadata()
        assert sorted(f"{b.host}:{b.port}" for b in metadata.brokers) == sorted(outside)
        async with Producer(outside[1], acks="quorum", linger_ms=1) as producer:
            for i in range(30):
                await producer.send_and_wait("outside", b"v%d" % i, partition=i % 3)
            dialed = set(producer.cluster._channels)
        consumer = Consumer(outside[2], group_id="outsiders", auto_offset_reset="earliest")
        got: list[bytes] = []
        try:
            consumer.subscribe(["outside"])

            async def everything() -> bool:
                got.extend(r.value or b"" for r in await consumer.poll(200))
                return len(got) >= 30

            await eventually(everything, WAIT_S, "the group reads all through outside",
                             op.log)
            dialed |= set(consumer.cluster._channels)
        finally:
            await consumer.close()
        assert sorted(got) == sorted(b"v%d" % i for i in range(30))
        assert dialed <= set(outside), dialed

        kafka_outside = [kubelet.outside_address(f"events-{i}", "external-kafka")
                         for i in range(3)]
        brokers = await asyncio.to_thread(lambda: AdminClient(
            {"bootstrap.servers": kafka_outside[0]}).list_topics(timeout=30).brokers)
        assert sorted(f"{b.host}:{b.port}" for b in brokers.values()) == sorted(kafka_outside)

        # The listener removed: its Services go (the brokers roll without it).
        await patch_spec(kmock, "Cluster", "events", {"listeners": None})

        async def gone() -> bool:
            return not external_services(kmock)

        await eventually(gone, WAIT_S, "the external Services deleted", op.log)
