"""Real brokers run by the test kubelet (tests/operator_kubelet.py) from the StatefulSet
the operator renders: the pods start, get their node's rack, and the Cluster is Ready; a
config change reaches the brokers live (no restart), one they refuse is a condition; an
image change rolls the brokers one at a time (leadership handed off on SIGTERM, each
waited for until no partition is under-replicated) under a running acks=quorum producer,
and no acknowledged record is lost."""

from __future__ import annotations

from pathlib import Path

import kmock
import pytest

from odradek.client import Admin
from odradek.operator import cluster as cl
from tests import kube
from tests.operator_fixtures import WAIT_S, conditions, producing, running_operator
from tests.operator_kubelet import ZONE, Kubelet

pytestmark = [pytest.mark.slow, pytest.mark.kmock(cls=kube.OdradekKube)]
SPEC = {"brokers": 3, "rack": {"topologyKey": "topology.kubernetes.io/zone"}}
# A restarted broker has 5 s to be ready (they start in about 2 s here) before the roll
# stops.
ROLL_ENV = {"ODRADEK_OPERATOR_ROLL_TIMEOUT_S": "5"}


def config_hash(image: str) -> str:
    return cl.config_hash(cl.desired({**SPEC, "image": image}, "events", kube.NAMESPACE))


async def test_rolling_restart_under_a_producer(kmock: kmock.KubernetesEmulator,
                                                tmp_path: Path) -> None:
    async with Kubelet(kmock, tmp_path / "pods") as kubelet, running_operator(
            kmock, tmp_path, kubelet.bootstrap("events", 3), ROLL_ENV) as op:
        bootstrap = kubelet.bootstrap("events", 3)
        await kube.apply(kmock, kube.manifest("Cluster", "events", SPEC))
        await kube.wait_ready(kmock, op, "Cluster", "events", timeout=3 * WAIT_S)
        async with Admin(bootstrap) as admin:
            # Each broker registered the rack the operator copied from its node.
            md = await admin.metadata()
            assert sorted((b.id, b.rack) for b in md.brokers) == [(i, ZONE) for i in range(3)]
            await admin.create_topic("ledger", 3, 3)
        async with producing(bootstrap, "ledger") as producer:
            async def writing() -> bool:
                return len(producer.acked) > 20

            await kube.eventually(writing, WAIT_S, "acknowledged writes", op.log)

            # spec.config: the brokers' cluster-wide topic defaults, live, no restart.
            before = dict(kubelet.starts)
            config = {"retention.ms": "3600000"}
            await kube.patch_spec(kmock, "Cluster", "events", {"config": config})

            async def applied() -> bool:
                return await admin.describe_cluster_configs() == config

            async with Admin(bootstrap) as admin:
                await kube.eventually(applied, WAIT_S, "the config applied live", op.log)
                desc = await admin.describe_topic("ledger")
                assert ("retention.ms", "3600000") in {(c.name, c.value) for c in desc.configs}
                # One the brokers refuse is a condition with their words; nothing changes.
                await kube.patch_spec(kmock, "Cluster", "events",
                                      {"config": {"retention.ms": "soon"}})
                await kube.wait_ready(kmock, op, "Cluster", "events", "False", "InvalidConfig")
                assert await admin.describe_cluster_configs() == config
                await kube.patch_spec(kmock, "Cluster", "events", {"config": config})
                await kube.wait_ready(kmock, op, "Cluster", "events")
            assert kubelet.starts == before
            image = "odradek:2"

            async def rolled() -> bool:
                pods = kube.objects_of(kmock, "v1/pods")
                hashes = {p["metadata"]["annotations"]["odradek.io/config-hash"] for p in pods}
                conds = conditions(kmock, "Cluster", "events")
                return (len(pods) == 3 and hashes == {config_hash(image)}
                        and conds.get("Ready", {}).get("status") == "True"
                        and conds.get("Reconciling", {}).get("status") == "False")

            before = dict(kubelet.starts)
            await kube.patch_spec(kmock, "Cluster", "events", {"image": image})
            await kube.eventually(rolled, 6 * WAIT_S, "every broker restarted on the new "
                                  "image", op.log)
            # Each broker restarted once, and never two brokers down at a time.
            assert {n: kubelet.starts[n] - before[n] for n in before} == {
                f"events-{i}": 1 for i in range(3)}
            assert kubelet.most_not_ready == 1

            # A broker that does not come back stops the roll: Degraded, no other restarted.
            kubelet.broken.add("events-2")
            before = dict(kubelet.starts)
            image = "odradek:3"
            await kube.patch_spec(kmock, "Cluster", "events", {"image": image})

            async def stuck() -> bool:
                degraded = conditions(kmock, "Cluster", "events").get("Degraded", {})
                return bool(degraded.get("reason") == "BrokerNotBack"
                            and degraded.get("status") == "True"
                            and "broker 2" in degraded.get("message", ""))

            await kube.eventually(stuck, WAIT_S, "Degraded BrokerNotBack", op.log)
            assert kubelet.starts == before
            # Once it runs again, the roll carries on to the end.
            kubelet.broken.clear()
            await kube.eventually(rolled, 6 * WAIT_S, "the roll finished", op.log)
            assert kubelet.most_not_ready == 1

            await producer.finish()
            assert len(producer.acked) > 50
            await producer.read_all(3)
