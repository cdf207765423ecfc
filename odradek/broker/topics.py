"""Topics on this broker: create, delete, describe, alter configs, add partitions.

Knows nothing of gRPC; errors are BrokerError and the storage layer's own."""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc

from odradek.broker.catalog import Catalog, TopicRecord
from odradek.broker.errors import BrokerError, unknown_topic
from odradek.broker.names import check_topic_name
from odradek.broker.partition import Partition
from odradek.storage import LogConfig, PartitionLog

log = logging.getLogger("odradek.broker")

MAX_PARTITIONS = 10_000


@dataclass
class Topic:
    record: TopicRecord
    config: LogConfig
    partitions: list[Partition]

    @property
    def name(self) -> str:
        return self.record.name


class TopicManager:
    """Owns the topics of one broker and their partition logs under data_dir."""

    def __init__(self, data_dir: Path, defaults: LogConfig, replication_factor: int = 1) -> None:
        self.data_dir = data_dir
        self.defaults = defaults
        self.default_replication_factor = replication_factor
        self.catalog = Catalog(data_dir / "__catalog")
        self.topics: dict[str, Topic] = {}
        # Directories of deleted topics go here first, so a crash mid-delete leaves
        # nothing that looks like a live partition; emptied at start-up.
        self._trash = data_dir / "__trash"

    def open(self) -> None:
        shutil.rmtree(self._trash, ignore_errors=True)
        for record in self.catalog.load():
            config = LogConfig.from_dict(record.configs, base=self.defaults)
            partitions = [self._open_partition(record.name, i, config)
                          for i in range(record.partitions)]
            self.topics[record.name] = Topic(record, config, partitions)
        log.info("opened %d topics from %s", len(self.topics), self.data_dir)

    def close(self) -> None:
        for topic in self.topics.values():
            for partition in topic.partitions:
                partition.close()
        self.topics.clear()

    def get(self, name: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            raise unknown_topic(name)
        return topic

    def partition(self, name: str, index: int) -> Partition:
        topic = self.topics.get(name)
        if topic is None or not 0 <= index < len(topic.partitions):
            raise unknown_topic(name, index)
        return topic.partitions[index]

    def create(self, name: str, partitions: int, replication_factor: int,
               configs: dict[str, str], validate_only: bool = False) -> Topic | None:
        check_topic_name(name)
        _check_partition_count(partitions, name)
        rf = replication_factor or self.default_replication_factor
        if rf != 1:
            raise BrokerError(
                grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REPLICATION_FACTOR",
                f"replication factor {rf} is larger than the 1 broker available",
                {"topic": name})
        config = LogConfig.from_dict(configs, base=self.defaults)
        if name in self.topics:
            raise BrokerError(grpc.StatusCode.ALREADY_EXISTS, "TOPIC_ALREADY_EXISTS",
                              f"topic {name!r} already exists", {"topic": name})
        if validate_only:
            return None
        record = TopicRecord.new(name, partitions, rf, dict(configs))
        topic = Topic(record, config,
                      [self._open_partition(name, i, config) for i in range(partitions)])
        self.catalog.save(record)
        self.topics[name] = topic
        log.info("created topic %s with %d partitions", name, partitions)
        return topic

    def delete(self, name: str) -> None:
        topic = self.get(name)
        self.catalog.remove(name)
        del self.topics[name]
        for partition in topic.partitions:
            partition.close()
            path = self._partition_dir(name, partition.index)
            doomed = self._trash / f"{path.name}.{uuid.uuid4().hex[:8]}"
            if path.exists():
                self._trash.mkdir(exist_ok=True)
                path.rename(doomed)
                shutil.rmtree(doomed, ignore_errors=True)
        log.info("deleted topic %s", name)

    def alter_configs(self, name: str, set_: dict[str, str], delete: list[str],
                      validate_only: bool = False) -> Topic:
        topic = self.get(name)
        overrides = dict(topic.record.configs)
        for key in delete:
            overrides.pop(key, None)
        overrides.update(set_)
        config = LogConfig.from_dict(overrides, base=self.defaults)
        if validate_only:
            return topic
        topic.record.configs = overrides
        self.catalog.save(topic.record)
        topic.config = config
        for partition in topic.partitions:
            partition.log.update_config(config)
        return topic

    def add_partitions(self, name: str, total: int, validate_only: bool = False) -> Topic:
        topic = self.get(name)
        current = len(topic.partitions)
        if total <= current:
            raise BrokerError(
                grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARTITIONS",
                f"topic {name!r} has {current} partitions; the new count must be larger, "
                f"got {total}", {"topic": name})
        _check_partition_count(total, name)
        if validate_only:
            return topic
        topic.partitions.extend(self._open_partition(name, i, topic.config)
                                for i in range(current, total))
        topic.record.partitions = total
        self.catalog.save(topic.record)
        return topic

    def _partition_dir(self, name: str, index: int) -> Path:
        return self.data_dir / f"{name}-{index}"

    def _open_partition(self, name: str, index: int, config: LogConfig) -> Partition:
        return Partition(name, index, PartitionLog.open(self._partition_dir(name, index), config))


def _check_partition_count(count: int, name: str) -> None:
    if not 1 <= count <= MAX_PARTITIONS:
        raise BrokerError(
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARTITIONS",
            f"partition count must be between 1 and {MAX_PARTITIONS}, got {count}",
            {"topic": name})
