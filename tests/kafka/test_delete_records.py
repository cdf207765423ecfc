"""DeleteRecords (API key 21) from kafka-python's and confluent-kafka's admin clients: the
low watermark they are told, what consumers then read, and the errors they are given."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka import TopicPartition as ConfluentTP
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import NewTopic as ConfluentNewTopic
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kerrors
from kafka.admin import NewTopic

from tests.kafka.conftest import KafkaBroker


def _produce(broker: KafkaBroker, topic: str, count: int) -> list[int]:
    producer = KafkaProducer(bootstrap_servers=broker.kafka_address)
    try:
        futures = [producer.send(topic, b"v%d" % i, partition=0) for i in range(count)]
        producer.flush(timeout=20)
        return [f.get(timeout=20).offset for f in futures]
    finally:
        producer.close(timeout=5)


def _earliest(broker: KafkaBroker, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=broker.kafka_address, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        return int(consumer.beginning_offsets([tp], timeout_ms=20_000)[tp])
    finally:
        consumer.close()


def test_kafka_python_delete_records(kafka_broker: KafkaBroker) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.kafka_address,
                             request_timeout_ms=20_000)
    try:
        admin.create_topics([NewTopic("trail", 1, 1)])
        offsets = _produce(kafka_broker, "trail", 10)
        cut = offsets[6]
        result: Any = admin.delete_records({TopicPartition("trail", 0): cut})
        assert result[TopicPartition("trail", 0)]["low_watermark"] == cut
        assert _earliest(kafka_broker, "trail") == cut
        consumer = KafkaConsumer("trail", bootstrap_servers=kafka_broker.kafka_address,
                                 auto_offset_reset="earliest", consumer_timeout_ms=5_000)
        try:
            assert [m.value for m in consumer][:4] == [b"v6", b"v7", b"v8", b"v9"]
        finally:
            consumer.close()
        with pytest.raises(kerrors.OffsetOutOfRangeError):
            admin.delete_records({TopicPartition("trail", 0): offsets[-1] + 100})
    finally:
        admin.close()


def test_confluent_delete_records(kafka_broker: KafkaBroker) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_broker.kafka_address})
    admin.create_topics([ConfluentNewTopic("ledger", 1, 1)])["ledger"].result(timeout=20)
    offsets = _produce(kafka_broker, "ledger", 5)
    futures = admin.delete_records([ConfluentTP("ledger", 0, offsets[3])])
    deleted = futures[ConfluentTP("ledger", 0)].result(timeout=20)
    assert deleted.low_watermark == offsets[3]
    # -1: every record up to the high watermark.
    futures = admin.delete_records([ConfluentTP("ledger", 0, -1)])
    deleted = futures[ConfluentTP("ledger", 0)].result(timeout=20)
    assert deleted.low_watermark == _earliest(kafka_broker, "ledger") > offsets[-1]
    futures = admin.delete_records([ConfluentTP("__consumer_offsets", 0, 0)])
    with pytest.raises(KafkaException):
        futures[ConfluentTP("__consumer_offsets", 0)].result(timeout=20)
