"""The Kafka listener against the gRPC client on the same 3-broker cluster, in one run:
confluent-kafka (librdkafka) producer (acks=all, idempotent) and consumer, and `odradek
bench produce`/`consume` (the gRPC client), for 1 KB and 100 B records on RF=3 topics.

    PYTHONPATH=. .venv/bin/python bench/kafka_bench.py [--records-1k N] [--records-100b N]

Prints each figure and the Kafka/gRPC ratios; --json-out writes them as JSON."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_bench import Cluster, create_topics, free_ports, log, wait_balanced  # noqa: E402
from latency import latency_ms  # noqa: E402
from run import run_bench  # noqa: E402

MB = 1_000_000


def cluster_with_kafka(root: Path) -> tuple[Cluster, str]:
    """A 3-broker cluster (not started) whose brokers also serve the Kafka protocol, and
    the Kafka bootstrap list."""
    cluster = Cluster(root)
    kafka_ports = free_ports(3)
    for broker, port in zip(cluster.brokers, kafka_ports, strict=True):
        broker.args += ["--kafka-port", str(port)]
    return cluster, ",".join(f"127.0.0.1:{port}" for port in kafka_ports)


def kafka_produce(bootstrap: str, topic: str, records: int, size: int,
                  rate: float = 0.0) -> dict[str, Any]:
    """acks=all, idempotent; `rate` records/s (0: as fast as the producer goes). Latency is
    librdkafka's own, from produce() to the delivery report."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5,
                         "batch.size": 1_000_000, "queue.buffering.max.kbytes": 1_048_576})
    failed: list[str] = []
    latencies: list[float] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failed.append(str(error))
        else:
            latencies.append(message.latency() or 0.0)

    value = b"x" * size
    interval = 1 / rate if rate > 0 else 0.0
    clock = time.perf_counter
    started = clock()
    for i in range(records):
        if interval:
            # Polling while waiting for the slot serves delivery reports on time. poll()
            # takes whole milliseconds (a shorter wait returns at once, and the loop would
            # spin a core away from the brokers), so the rest of a wait is a sleep.
            while (delay := started + i * interval - clock()) > 0:
                if delay >= 0.001:
                    producer.poll(delay)
                else:
                    time.sleep(delay)
                    producer.poll(0)
        while True:
            try:
                producer.produce(topic, value, key=b"%d" % i, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    left = producer.flush(300)
    elapsed = clock() - started
    if left or failed:
        raise SystemExit(f"confluent-kafka: {left} undelivered, errors: {failed[:3]}")
    return {"records": records, "record_size": size, "seconds": elapsed,
            "records_per_s": records / elapsed, "mb_per_s": records * size / elapsed / MB,
            "rate": rate, "latency_ms": latency_ms(latencies)}


def kafka_consume(bootstrap: str, topic: str, partitions: int, records: int,
                  size: int) -> dict[str, float]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{topic}",
                         "enable.auto.commit": False, "fetch.max.bytes": 52_428_800,
                         "max.partition.fetch.bytes": 10_485_760})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = 0
    started = time.perf_counter()
    deadline = started + 300
    try:
        while got < records and time.perf_counter() < deadline:
            for message in consumer.consume(10_000, 1.0):
                if not message.error():
                    got += 1
    finally:
        consumer.close()
    elapsed = time.perf_counter() - started
    return {"records": got, "seconds": elapsed, "records_per_s": got / elapsed,
            "mb_per_s": got * size / elapsed / MB}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records-1k", type=int, default=100_000)
    parser.add_argument("--records-100b", type=int, default=300_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    p = args.partitions
    with tempfile.TemporaryDirectory(prefix="odradek-kafka-bench-") as tmp:
        cluster, kafka_boot = cluster_with_kafka(Path(tmp))
        with cluster:
            topics = ["g-1k", "g-100b", "k-1k", "k-100b"]
            create_topics(cluster.bootstrap, topics, p, 3)
            wait_balanced(cluster, topics, 20)
            log(f"3 brokers, gRPC {cluster.bootstrap}, Kafka {kafka_boot}; {p} partitions, "
                "RF=3, acks=all/quorum")
            common = ["--bootstrap", cluster.bootstrap, "--partitions", str(p),
                      "--replication-factor", "3", "--acks", "quorum", "--no-progress"]
            results: dict[str, Any] = {}
            results["grpc_produce_1k"] = run_bench(
                "produce", *common, "--topic", "g-1k", "--records", str(args.records_1k),
                "--record-size", "1024")
            results["kafka_produce_1k"] = kafka_produce(kafka_boot, "k-1k", args.records_1k,
                                                        1024)
            results["grpc_produce_100b"] = run_bench(
                "produce", *common, "--topic", "g-100b", "--records",
                str(args.records_100b), "--record-size", "100")
            results["kafka_produce_100b"] = kafka_produce(kafka_boot, "k-100b",
                                                          args.records_100b, 100)
            results["grpc_consume_1k"] = run_bench(
                "consume", "--bootstrap", cluster.bootstrap, "--topic", "g-1k",
                "--records", str(args.records_1k), "--no-progress")
            results["kafka_consume_1k"] = kafka_consume(kafka_boot, "k-1k", p,
                                                        args.records_1k, 1024)
            results["grpc_consume_100b"] = run_bench(
                "consume", "--bootstrap", cluster.bootstrap, "--topic", "g-100b",
                "--records", str(args.records_100b), "--no-progress")
            results["kafka_consume_100b"] = kafka_consume(kafka_boot, "k-100b", p,
                                                          args.records_100b, 100)
    print("\nwhat                   gRPC client        confluent-kafka    Kafka/gRPC")
    for what in ("produce_1k", "produce_100b", "consume_1k", "consume_100b"):
        g, k = results[f"grpc_{what}"], results[f"kafka_{what}"]
        gr, kr = float(g["records_per_s"]), float(k["records_per_s"])
        print(f"{what:<22} {gr:>9,.0f} rec/s    {kr:>9,.0f} rec/s    {kr / gr:>5.2f}"
              f"   ({float(g['mb_per_s']):.1f} vs {float(k['mb_per_s']):.1f} MB/s)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
