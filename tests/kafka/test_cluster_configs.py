"""Cluster-wide topic defaults through Kafka's admin API (kafka-configs.sh --entity-type
brokers --entity-default): AlterConfigs and DescribeConfigs on the BROKER resource with an
empty name (sent with aiokafka's request classes: the Python clients refuse empty broker
names before sending), under Kafka's broker names; they are Odradek's cluster-wide
defaults. Names that are no topic default, and a broker's own settings, are refused with
nothing changed."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import AlterConfigsRequest, DescribeConfigsRequest

from odradek.client import Admin
from tests.kafka.conftest import KafkaBroker

BROKER = 4


async def _send(admin: AIOKafkaAdminClient, request: Any) -> Any:
    node = next(iter(admin._client.cluster.brokers())).nodeId
    return await admin._client.send(node, request)


async def _alter(admin: AIOKafkaAdminClient, name: str,
                 configs: dict[str, str]) -> tuple[int, str]:
    reply = await _send(admin, AlterConfigsRequest(
        resources=[(BROKER, name, list(configs.items()))], validate_only=False))
    code, message, _type, _name = reply.resources[0]
    return code, message or ""


def test_cluster_defaults_through_the_kafka_admin_api(kafka_broker: KafkaBroker) -> None:
    async def go() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.kafka_address)
        await admin.start()
        try:
            async with Admin(kafka_broker.address) as grpc_admin:
                # AlterConfigs replaces the whole set, as Kafka's.
                assert await _alter(admin, "", {"log.retention.ms": "3600000",
                                                "message.max.bytes": "2048"}) == (0, "")
                assert await grpc_admin.describe_cluster_configs() == {
                    "retention.ms": "3600000", "max.message.bytes": "2048"}
                reply = await _send(admin, DescribeConfigsRequest(
                    resources=[(BROKER, "", None)], include_synonyms=False))
                entries = reply.resources[0][4]
                assert sorted((e[0], e[1], e[3]) for e in entries) == [
                    ("log.retention.ms", "3600000", 3), ("message.max.bytes", "2048", 3)]
                assert await _alter(admin, "", {"log.retention.ms": "3600000"}) == (0, "")
                assert await grpc_admin.describe_cluster_configs() == {
                    "retention.ms": "3600000"}

                code, message = await _alter(admin, "", {"num.network.threads": "8"})
                assert code != 0 and "cannot be set cluster-wide" in message
                code, message = await _alter(admin, "0", {"log.retention.ms": "1"})
                assert code != 0 and "start-up flags" in message
                assert await grpc_admin.describe_cluster_configs() == {
                    "retention.ms": "3600000"}
        finally:
            await admin.close()

    asyncio.run(go())
