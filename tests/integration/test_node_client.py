"""A client from outside the project (Node.js, @grpc/grpc-js + grpc-reflection-js) finds
the services by reflection and reads topic metadata from a running broker."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from tests.brokers import BrokerProcess

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def test_node_client_discovers_services_by_reflection(broker: BrokerProcess) -> None:
    if shutil.which("node") is None or not (NODE_DIR / "node_modules").exists():
        pytest.fail("node and tests/node/node_modules are required: run `make test`")
    with grpc.insecure_channel(broker.address) as channel:
        pb_grpc.AdminStub(channel).CreateTopic(
            pb.CreateTopicRequest(name="payments", partitions=3), timeout=10)
    result = subprocess.run(["node", str(NODE_DIR / "reflect.js"), broker.address],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert {"odradek.v1.Broker", "odradek.v1.Admin", "grpc.health.v1.Health"} <= set(
        out["services"])
    topics = out["metadata"]["topics"]
    assert [t["name"] for t in topics] == ["payments"]
    assert [p["partition"] for p in topics[0]["partitions"]] == [0, 1, 2]
    assert out["metadata"]["brokers"][0]["port"] == broker.port
    assert out["topics"]["topics"][0] == {
        "name": "payments", "partitions": 3, "replication_factor": 1, "internal": False}
