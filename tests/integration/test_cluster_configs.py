"""Cluster-wide topic config defaults with real brokers: set at run time through any
broker, in force at once on every broker for topics that do not set the config (a
max.message.bytes default refuses a record it accepted a moment before, with no restart),
kept over a restart, shown as dynamic by describe-configs, and bad ones refused with a
clear error and nothing changed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from odradek.client import Admin, OdradekError, Producer
from tests.brokers import ClusterProcesses
from tests.cli import odradek

BIG = b"x" * 4000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcesses]:
    c = ClusterProcesses(tmp_path_factory.mktemp("cluster-configs"), 3,
                         ["--default-replication-factor", "3"]).start()
    try:
        yield c
    finally:
        c.stop()


async def _send(bootstrap: str, topic: str, partition: int) -> str:
    """"ok", or the reason the big record was refused."""
    async with Producer(bootstrap, linger_ms=1, request_timeout_ms=20_000) as producer:
        try:
            await producer.send_and_wait(topic, BIG, partition=partition)
        except OdradekError as exc:
            return exc.reason
    return "ok"


def test_cluster_defaults_apply_live_everywhere(cluster: ClusterProcesses) -> None:
    async def go() -> None:
        bootstrap = cluster.bootstrap
        async with Admin(bootstrap) as admin:
            await admin.create_topic("plain", partitions=3, replication_factor=3)
            await admin.create_topic("own", partitions=1, replication_factor=3,
                                     configs={"max.message.bytes": "100000"})
            # Leaders on every broker: each applies the default to its own partitions.
            assert {await _send(bootstrap, "plain", p) for p in range(3)} == {"ok"}
            configs = await admin.alter_cluster_configs({"max.message.bytes": "1024"})
            assert configs == {"max.message.bytes": "1024"}
            for b in cluster.brokers:  # every broker's image has it
                async with Admin(b.address) as one:
                    for _ in range(100):
                        if await one.describe_cluster_configs() == configs:
                            break
                        await asyncio.sleep(0.1)
                    desc = await one.describe_topic("plain")
                    entry = next(c for c in desc.configs if c.name == "max.message.bytes")
                    assert (entry.value, entry.is_default) == ("1024", True)
            refused = {await _send(bootstrap, "plain", p) for p in range(3)}
            assert refused == {"RECORD_TOO_LARGE"}
            assert await _send(bootstrap, "own", 0) == "ok"  # its own setting wins
            broker_configs = await admin.describe_broker_configs(1)
            entry = next(c for c in broker_configs if c.name == "max.message.bytes")
            assert (entry.value, entry.source) == ("1024", "dynamic")

            with pytest.raises(OdradekError, match="INVALID_CONFIG"):
                await admin.alter_cluster_configs({"not.a.config": "1"})
            with pytest.raises(OdradekError, match="INVALID_CONFIG"):
                await admin.alter_cluster_configs({"max.message.bytes": "-5"})
            assert await admin.describe_cluster_configs() == configs

        # Kept in the metadata: a restarted broker comes back with it.
        cluster.brokers[2].stop()
        cluster.brokers[2].start()
        async with Admin(cluster.brokers[2].address) as admin:
            assert await admin.describe_cluster_configs() == {"max.message.bytes": "1024"}
            await admin.alter_cluster_configs(delete=["max.message.bytes"])
        for _ in range(100):
            if {await _send(bootstrap, "plain", p) for p in range(3)} == {"ok"}:
                break
            await asyncio.sleep(0.1)
        assert {await _send(bootstrap, "plain", p) for p in range(3)} == {"ok"}

    asyncio.run(go())


def test_the_command_line_sets_and_shows_them(cluster: ClusterProcesses) -> None:
    env = {"ODRADEK_BOOTSTRAP": cluster.bootstrap}
    out = odradek("cluster", "alter-configs", "--config", "retention.ms=86400000", env=env)
    assert out.returncode == 0, out.stderr
    assert "retention.ms=86400000" in out.stdout
    shown = odradek("cluster", "describe-configs", "0", env=env)
    assert "retention.ms=86400000\t(dynamic)" in shown.stdout, shown.stdout
    bad = odradek("cluster", "alter-configs", "--config", "retention.ms=soon", env=env)
    assert bad.returncode != 0 and "retention.ms" in bad.stderr
    out = odradek("cluster", "alter-configs", "--delete-config", "retention.ms", env=env)
    assert out.returncode == 0 and "no cluster-wide topic defaults" in out.stdout
