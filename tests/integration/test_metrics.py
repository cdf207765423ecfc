"""A real broker's Prometheus endpoint: what it exports after some traffic."""

from __future__ import annotations

import urllib.error
import urllib.request

import grpc
import pytest

from odradek.records.builder import BatchBuilder
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from tests.brokers import BrokerProcess
from tests.metrics_util import parse, value


def _batch(count: int) -> bytes:
    builder = BatchBuilder()
    for i in range(count):
        builder.append(1000 + i, None, b"value-%d" % i)
    return builder.build()


def test_broker_exports_traffic_partition_and_process_metrics(broker: BrokerProcess) -> None:
    with grpc.insecure_channel(broker.address) as channel:
        data, admin = pb_grpc.BrokerStub(channel), pb_grpc.AdminStub(channel)
        admin.CreateTopic(pb.CreateTopicRequest(name="m", partitions=2,
                                              configs={"flush.messages": "1"}), timeout=10)
        records = _batch(5)
        for _ in range(3):
            data.Produce(pb.ProduceRequest(topic="m", partition=0, records=records), timeout=10)
        reply = data.Fetch(pb.FetchRequest(topic="m", partition=0, offset=0), timeout=10)
        assert reply.records
        with pytest.raises(grpc.RpcError):
            data.Fetch(pb.FetchRequest(topic="nope", partition=0, offset=0), timeout=10)

    s = parse(broker.scrape())
    assert value(s, "odradek_topic_records_in_total", topic="m") == 15
    assert value(s, "odradek_topic_bytes_in_total", topic="m") == 3 * len(records)
    assert value(s, "odradek_topic_records_out_total", topic="m") == 15
    assert value(s, "odradek_topic_bytes_out_total", topic="m") >= 3 * len(records)
    assert value(s, "odradek_rpc_requests_total", method="Produce") == 3
    assert value(s, "odradek_rpc_requests_total", method="Fetch") == 2
    assert value(s, "odradek_rpc_errors_total", method="Fetch", code="NOT_FOUND",
                 reason="UNKNOWN_TOPIC_OR_PARTITION") == 1
    assert value(s, "odradek_rpc_duration_seconds_count", method="Produce") == 3
    assert value(s, "odradek_partitions_led") == 2
    assert value(s, "odradek_partitions_under_replicated") == 0
    assert value(s, "odradek_partitions_without_leader") == 0
    assert value(s, "odradek_partition_leader", topic="m", partition="1") == 1
    assert value(s, "odradek_partition_raft_term", topic="m", partition="0") >= 1
    assert value(s, "odradek_log_size_bytes", topic="m", partition="0") > 0
    assert value(s, "odradek_log_segments", topic="m", partition="0") >= 1
    assert value(s, "odradek_partition_high_watermark", topic="m", partition="0") >= 15
    assert value(s, "odradek_raft_elections_won_total") >= 2
    assert value(s, "odradek_log_flush_duration_seconds_count") >= 1
    assert value(s, "odradek_data_dir_free_bytes") > 0
    assert value(s, "odradek_data_dir_size_bytes") >= value(s, "odradek_data_dir_free_bytes")
    assert value(s, "process_resident_memory_bytes") > 0
    assert value(s, "odradek_broker_is_controller") == 1


def test_metrics_endpoint_answers_only_metrics(broker: BrokerProcess) -> None:
    base = broker.metrics_url.removesuffix("/metrics")
    with urllib.request.urlopen(broker.metrics_url, timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(base + "/other", timeout=10)
    assert info.value.code == 404
