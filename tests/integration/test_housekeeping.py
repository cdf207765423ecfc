"""Retention and compaction in a running broker (real process): the housekeeper's worker
compacts a keyed topic down to the latest value per key and retention drops a topic's
oldest segments past retention.bytes and removes their files, while produce goes on."""

from __future__ import annotations

import time
from pathlib import Path

from odradek.records import encode_batch
from odradek.v1 import odradek_pb2 as pb
from tests.brokers import BrokerProcess, wait_until
from tests.integration.test_crash import read_all


def test_compaction_and_retention_run_in_the_broker(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "b0", extra_args=["--log-cleanup-interval-ms", "200"])
    broker.start()
    try:
        with broker.health_channel() as channel:
            stub, admin = broker.stubs(channel)
            admin.CreateTopic(pb.CreateTopicRequest(name="kv", partitions=1, configs={
                "cleanup.policy": "compact", "segment.bytes": "1024",
                "min.cleanable.dirty.ratio": "0.01"}), timeout=30)
            # By size: by time, the segment holding the leader's no-op (stamped when it was
            # written) would keep everything behind it for retention.ms, as in Kafka.
            admin.CreateTopic(pb.CreateTopicRequest(name="old", partitions=1, configs={
                "retention.bytes": "2048", "segment.bytes": "1024"}), timeout=30)
            now = int(time.time() * 1000)
            latest: dict[bytes, bytes] = {}
            for i in range(40):
                key, value = b"k%d" % (i % 4), b"%03d:" % i + b"v" * 200
                latest[key] = value
                stub.Produce(pb.ProduceRequest(topic="kv", partition=0, records=encode_batch(
                    [(now, key, value)])), timeout=30)
                stub.Produce(pb.ProduceRequest(topic="old", partition=0, records=encode_batch(
                    [(now - 3_600_000, None, b"o" * 200)])), timeout=30)

            def earliest(topic: str) -> int:
                return int(stub.ListOffsets(pb.ListOffsetsRequest(
                    topic=topic, partition=0, spec=pb.OFFSET_SPEC_EARLIEST), timeout=10).offset)

            wait_until(lambda: earliest("old") > 0, 60, "retention to drop old segments")
            wait_until(lambda: len(read_all(broker.address, "kv")) < 20, 60,
                       "compaction of the keyed topic")
            wait_until(lambda: not list(broker.data_dir.rglob("*.deleted")), 30,
                       "the dropped segments' files to be removed")
            kept = read_all(broker.address, "kv")
            values: dict[bytes, bytes] = {}
            for _, value in kept:
                values[value[:2]] = value  # nothing out of order: offsets stay increasing
            assert [o for o, _ in kept] == sorted(o for o, _ in kept)
            assert {v for _, v in kept} >= set(latest.values())  # every key's latest
            metrics = broker.scrape()
            assert 'odradek_log_compaction_runs_total{topic="kv"}' in metrics
    finally:
        broker.stop()
