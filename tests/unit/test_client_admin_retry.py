"""The admin client retries the answers a cluster gives while it elects a controller
(NOT_CONTROLLER, LEADER_NOT_AVAILABLE) until its API timeout, as Kafka's admin client
does; every other error reaches the caller on the first try."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from odradek.client import Admin
from odradek.client.errors import OdradekError
from tests.unit.fake_odradek import FakeCluster


@asynccontextmanager
async def fake_cluster() -> AsyncIterator[FakeCluster]:
    fake = await FakeCluster(1).start()
    try:
        yield fake
    finally:
        await fake.stop()


def calls(fake: FakeCluster, method: str) -> int:
    return sum(1 for _, m, _ in fake.requests if m == method)


async def test_not_controller_is_retried_until_the_call_succeeds() -> None:
    async with fake_cluster() as fake, Admin(fake.bootstrap) as admin:
        fake.inject("CreateTopic", "NOT_CONTROLLER", grpc.StatusCode.UNAVAILABLE, count=3)
        topic = await admin.create_topic("orders", partitions=2)
        assert topic.name == "orders" and "orders" in fake.topics
        assert calls(fake, "CreateTopic") == 4


async def test_leader_not_available_is_retried() -> None:
    async with fake_cluster() as fake, Admin(fake.bootstrap) as admin:
        fake.create_topic("orders")
        fake.inject("DescribeTopic", "LEADER_NOT_AVAILABLE", grpc.StatusCode.UNAVAILABLE)
        assert (await admin.describe_topic("orders")).name == "orders"
        assert calls(fake, "DescribeTopic") == 2


async def test_retries_stop_at_the_api_timeout() -> None:
    async with fake_cluster() as fake, Admin(fake.bootstrap, api_timeout_ms=300) as admin:
        fake.inject("CreateTopic", "NOT_CONTROLLER", grpc.StatusCode.UNAVAILABLE, count=1000)
        with pytest.raises(OdradekError) as caught:
            await admin.create_topic("orders")
        assert caught.value.reason == "NOT_CONTROLLER"
        assert 1 < calls(fake, "CreateTopic") < 1000
        assert "orders" not in fake.topics


async def test_other_errors_are_not_retried() -> None:
    async with fake_cluster() as fake, Admin(fake.bootstrap) as admin:
        fake.create_topic("orders")
        with pytest.raises(OdradekError) as caught:
            await admin.create_topic("orders")
        assert caught.value.reason == "TOPIC_ALREADY_EXISTS"
        assert calls(fake, "CreateTopic") == 1


def test_a_timeout_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="api_timeout_ms must be positive"):
        Admin("127.0.0.1:1", api_timeout_ms=0)
