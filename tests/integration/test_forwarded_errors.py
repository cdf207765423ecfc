"""An admin request sent to a broker that is not the controller is forwarded; the
controller's error must reach the client as it was, not as UNKNOWN."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from odradek.client.errors import from_rpc_error
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from tests.brokers import ClusterProcesses


@pytest.mark.timeout(120)
def test_forwarded_error_keeps_its_status(tmp_path: Path) -> None:
    cluster = ClusterProcesses(tmp_path).start()
    try:
        request = pb.CreateTopicRequest(name="twice", partitions=1, replication_factor=3)
        with grpc.insecure_channel(cluster.brokers[0].address) as channel:
            controller = pb_grpc.BrokerStub(channel).Metadata(
                pb.MetadataRequest(), timeout=10).controller_id
            pb_grpc.AdminStub(channel).CreateTopic(request, timeout=30)
        other = cluster.brokers[(controller + 1) % len(cluster.brokers)]
        with (grpc.insecure_channel(other.address) as channel,
              pytest.raises(grpc.RpcError) as info):
            pb_grpc.AdminStub(channel).CreateTopic(request, timeout=30)
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert from_rpc_error(info.value).reason == "TOPIC_ALREADY_EXISTS"
        assert "Traceback" not in other.log()
    finally:
        cluster.stop()
