"""Preferred-leader election on demand and broker configs described, against three real
brokers with background rebalancing off: through `odradek cluster elect-leaders` and
`describe-configs`, and through kafka-python's ElectLeaders and DescribeConfigs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.protocol.admin.topics import ElectionType

from odradek.client.sync import SyncAdmin
from odradek.client.types import PartitionInfo
from tests.brokers import ClusterProcesses, free_port, wait_until
from tests.cli import odradek

TOPIC = "ledger"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcesses]:
    cluster = ClusterProcesses(tmp_path, 3, ["--auto-leader-rebalance", "off"])
    for broker in cluster.brokers:
        broker.kafka_port = free_port()  # type: ignore[attr-defined]
        broker.extra_args += ["--kafka-port", str(broker.kafka_port)]  # type: ignore[attr-defined]
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def kafka_address(cluster: ClusterProcesses, broker_id: int) -> str:
    return f"127.0.0.1:{cluster.brokers[broker_id].kafka_port}"  # type: ignore[attr-defined]


def ok(*args: str) -> str:
    r = odradek(*args)
    assert (r.returncode, r.stderr) == (0, ""), r
    return r.stdout


def state(admin: SyncAdmin) -> PartitionInfo:
    return admin.describe_topic(TOPIC).partitions[0].info


def move_leadership_off(cluster: ClusterProcesses, admin: SyncAdmin) -> int:
    """Kills the preferred replica's broker -9 and brings it back once another leads:
    with rebalancing off it stays a follower, in sync. Returns the preferred replica."""
    preferred = state(admin).replicas[0]
    wait_until(lambda: state(admin).leader == preferred, 30, "the preferred replica leads")
    cluster.brokers[preferred].kill9()
    wait_until(lambda: state(admin).leader not in (-1, preferred), 30, "a new leader")
    cluster.brokers[preferred].start()
    wait_until(lambda: preferred in state(admin).in_sync_replicas, 30,
               "the preferred replica back in sync")
    assert state(admin).leader != preferred
    return preferred


@pytest.mark.timeout(240)
def test_elect_preferred_leaders(cluster: ClusterProcesses) -> None:
    boot = ["--bootstrap", cluster.bootstrap]
    ok("topic", "create", TOPIC, "--replication-factor", "3", *boot)
    with SyncAdmin(cluster.bootstrap) as admin:
        preferred = move_leadership_off(cluster, admin)
        out = ok("cluster", "elect-leaders", "--topic", TOPIC, "--partition", "0", *boot)
        assert out.splitlines() == ["TOPIC   PARTITION  LEADER  OUTCOME",
                                    f"ledger          0  {preferred:>6}  elected"]
        wait_until(lambda: state(admin).leader == preferred, 10, "the preferred leader")
        out = ok("cluster", "elect-leaders", "--topic", TOPIC, "--json", *boot)
        assert json.loads(out) == [{"topic": TOPIC, "partition": 0, "leader": preferred,
                                    "outcome": "already preferred", "reason": "",
                                    "message": ""}]

        # The preferred replica down: the election fails, the leader stays, exit 1.
        cluster.brokers[preferred].kill9()
        wait_until(lambda: state(admin).leader not in (-1, preferred), 30, "a new leader")
        r = odradek("cluster", "elect-leaders", "--topic", TOPIC, *boot)
        assert r.returncode == 1, r
        assert "failed: the preferred replica of partition 0 of topic 'ledger', broker " \
               f"{preferred}, is not in sync" in r.stdout, r
        assert "(PREFERRED_LEADER_NOT_AVAILABLE)" in r.stdout, r
        cluster.brokers[preferred].start()
        wait_until(lambda: preferred in state(admin).in_sync_replicas, 30, "back in sync")

        # kafka-python's ElectLeaders, sent to a broker that does not lead the partition.
        assert state(admin).leader != preferred
        kafka = KafkaAdminClient(bootstrap_servers=kafka_address(cluster, preferred),
                                 request_timeout_ms=30_000)
        try:
            reply: Any = kafka.elect_leaders(ElectionType.PREFERRED, {TOPIC: [0]})
            [result] = reply.replica_election_results
            assert (result.topic, [(p.partition_id, p.error_code)
                                   for p in result.partition_result]) == (TOPIC, [(0, 0)])
            wait_until(lambda: state(admin).leader == preferred, 10, "the preferred leader")
        finally:
            kafka.close()


def test_describe_broker_configs(cluster: ClusterProcesses) -> None:
    boot = ["--bootstrap", cluster.bootstrap]
    out = ok("cluster", "describe-configs", "1", *boot)
    lines = out.splitlines()
    assert lines[0] == "Broker 1:"
    assert "\tauto-leader-rebalance=off\t(static)" in lines
    assert "\tbroker-id=1\t(static)" in lines
    assert f"\tport={cluster.brokers[1].port}\t(static)" in lines
    assert not any("(default)" in line for line in lines)
    every = json.loads(ok("cluster", "describe-configs", "--all", "--json", *boot))
    assert [b["broker_id"] for b in every] == [0, 1, 2]
    configs = {c["name"]: c for c in every[2]["configs"]}
    assert configs["default-replication-factor"]["value"] == "3"
    assert configs["default-replication-factor"]["source"] == "default"
    assert configs["retention.ms"]["source"] == "default"
    assert "the default of the topic config retention.ms" in \
        configs["retention.ms"]["documentation"]
    r = odradek("cluster", "describe-configs", "7", *boot)
    assert r.returncode == 1 and "no broker 7 is registered" in r.stderr, r

    kafka = KafkaAdminClient(bootstrap_servers=kafka_address(cluster, 1),
                             request_timeout_ms=30_000)
    try:
        reply: Any = kafka.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")],
                                            config_filter="all")
    finally:
        kafka.close()
    described = reply["broker"]["1"]
    assert described["auto-leader-rebalance"]["value"] == "off"
    assert described["auto-leader-rebalance"]["config_source"] == "STATIC_BROKER_CONFIG"
    assert described["retention.ms"]["config_source"] == "DEFAULT_CONFIG"
