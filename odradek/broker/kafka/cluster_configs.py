"""Cluster-wide topic defaults (AlterClusterConfigs) as Kafka clients see them: the BROKER
resource with an empty name, kafka-configs.sh --entity-type brokers --entity-default.

Kafka names these defaults as broker configs (log.retention.ms for retention.ms): both
names are taken, and they are described under Kafka's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from odradek.broker.errors import BrokerError, Reason
from odradek.storage import DEFAULTS

# Kafka's broker config -> the topic config it is the default of.
BROKER_NAMES = {
    "log.segment.bytes": "segment.bytes",
    "log.roll.ms": "segment.ms",
    "log.retention.ms": "retention.ms",
    "log.retention.bytes": "retention.bytes",
    "log.cleanup.policy": "cleanup.policy",
    "log.cleaner.delete.retention.ms": "delete.retention.ms",
    "log.cleaner.min.compaction.lag.ms": "min.compaction.lag.ms",
    "log.cleaner.min.cleanable.ratio": "min.cleanable.dirty.ratio",
    "message.max.bytes": "max.message.bytes",
    "log.index.interval.bytes": "index.interval.bytes",
    "log.message.timestamp.type": "message.timestamp.type",
    "log.flush.interval.messages": "flush.messages",
    "log.flush.interval.ms": "flush.ms",
    "min.insync.replicas": "min.insync.replicas",
}
KAFKA_NAMES = {topic: broker for broker, topic in BROKER_NAMES.items()}


def topic_config(name: str) -> str:
    """The topic config a cluster-wide default named `name` sets."""
    if name in BROKER_NAMES:
        return BROKER_NAMES[name]
    if name in DEFAULTS:
        return name
    raise BrokerError(Reason.INVALID_CONFIG,
                      f"{name!r} cannot be set cluster-wide here: the cluster-wide defaults "
                      f"are those of topic configs ({', '.join(sorted(BROKER_NAMES))})")


def to_topic_configs(set_: Mapping[str, str], delete: Iterable[str]
                     ) -> tuple[dict[str, str], list[str]]:
    return ({topic_config(k): v for k, v in set_.items()}, [topic_config(k) for k in delete])


def described(configs: Mapping[str, str]) -> list[tuple[str, str]]:
    """(Kafka's name, value) of each cluster-wide default set."""
    return sorted((KAFKA_NAMES.get(k, k), v) for k, v in configs.items())
