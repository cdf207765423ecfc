"""Topic administration and metadata answers over the cluster image.

Changes run on the controller: the request is validated (names, configs, placement) and
becomes a command in the metadata log. Reads (list, describe, metadata) are answered by
any broker from its own image. Knows no servicer; errors are BrokerError and the
metadata package's MetadataError."""

from __future__ import annotations

import uuid
from typing import Any

from odradek.broker.broker_configs import BrokerConfigEntry, describe, with_cluster_defaults
from odradek.broker.cluster import ClusterNode
from odradek.broker.errors import BrokerError, Reason, invalid_request, unknown_topic
from odradek.broker.metadata.commands import (
    AlterClusterConfigs,
    AlterTopicConfigs,
    DeleteTopic,
    ReassignPartition,
    decode_command,
    freeze_configs,
)
from odradek.broker.metadata.controller import (
    plan_create_partitions,
    plan_create_topic,
    plan_drain,
    plan_reassignment,
)
from odradek.broker.metadata.image import PartitionInfo
from odradek.broker.metadata.validation import require_topic, validate_delete_topic
from odradek.broker.names import check_topic_name, is_internal, refuse_internal
from odradek.broker.replication.replica import ReplicatedPartition
from odradek.broker.topic_defaults import effective_defaults
from odradek.broker.topics.types import (
    BrokerEntry,
    ClusterView,
    ConfigEntry,
    PartitionMove,
    PartitionState,
    PartitionView,
    TopicDescription,
    TopicSummary,
    TopicView,
)
from odradek.storage import DEFAULTS, LogConfig

MAX_PARTITIONS = 10_000
LEADER_WAIT_S = 10.0


class TopicAdmin:
    def __init__(self, cluster: ClusterNode, defaults: LogConfig,
                 default_replication_factor: int = 3) -> None:
        self.cluster = cluster
        self.defaults = defaults
        self.default_replication_factor = default_replication_factor
        # This broker's settings as it describes them (broker_configs.py).
        self.broker_configs: list[BrokerConfigEntry] = describe((), {})

    def topic_defaults(self) -> LogConfig:
        """What topics fall back on now: the cluster-wide defaults over this broker's."""
        return effective_defaults(self.defaults, self.cluster.image.cluster_configs)

    def described_broker_configs(self) -> list[BrokerConfigEntry]:
        """broker_configs with the cluster-wide defaults in force (source dynamic)."""
        return with_cluster_defaults(self.broker_configs, self.cluster.image.cluster_configs)

    # ------------------------------------------------------------ data plane
    def leader_partition(self, topic: str, index: int) -> ReplicatedPartition:
        """The local replica when this broker leads it; else NOT_LEADER or unknown."""
        partition = self.cluster.partitions.get((topic, index))
        if partition is not None and partition.node.is_leader():
            return partition
        if partition is not None:
            raise partition.not_leader_error()
        info = self.cluster.image.partition(topic, index)
        if info is None:
            raise unknown_topic(topic, index if topic in self.cluster.image.topics else None)
        meta = {"topic": topic, "partition": str(index)}
        address = self.cluster.address_of(info.leader if info.leader >= 0 else None)
        if address is not None:
            meta["leader_id"] = str(info.leader)
            meta["leader"] = address
        return_msg = (f"broker {self.cluster.id} holds no replica of partition {index} of "
                      f"topic {topic!r}" + (f"; the leader is at {address}" if address else ""))
        raise BrokerError(Reason.NOT_LEADER, return_msg, meta)

    async def delete_records(self, topic: str, index: int, before: int,
                             timeout_s: float = 30.0) -> int:
        """Kafka's DeleteRecords at this partition's leader; returns the new log start."""
        refuse_internal(topic, "delete records of")
        if before < -1:
            raise BrokerError(Reason.OFFSET_OUT_OF_RANGE,
                              f"cannot delete records before offset {before}: offsets are "
                              "0 or more (-1: the high watermark)",
                              {"topic": topic, "partition": str(index)})
        return await self.leader_partition(topic, index).delete_records(before, timeout_s)

    # ---------------------------------------------------------------- changes
    async def create(self, name: str, partitions: int, replication_factor: int,
                     configs: dict[str, str], validate_only: bool) -> TopicDescription | None:
        check_topic_name(name)
        if not 1 <= partitions <= MAX_PARTITIONS:
            raise BrokerError(Reason.INVALID_PARTITIONS,
                f"partition count must be between 1 and {MAX_PARTITIONS}, got {partitions}",
                {"topic": name})
        LogConfig.from_dict(configs, base=self.topic_defaults())
        image = self.cluster.image
        rf = replication_factor or min(self.default_replication_factor,
                                       max(1, len(image.available_brokers())))
        command = plan_create_topic(image, name, uuid.uuid4().hex, partitions, rf, configs)
        if validate_only:
            return None
        await self.cluster.propose(command)
        await self.cluster.wait_for(lambda img: _all_led(img.topics.get(name)), LEADER_WAIT_S)
        return self.describe(name)

    async def delete(self, name: str) -> None:
        refuse_internal(name, "delete")
        validate_delete_topic(self.cluster.image, name)
        await self.cluster.propose(DeleteTopic(name))

    async def alter_configs(self, name: str, set_: dict[str, str], delete: list[str],
                            validate_only: bool) -> TopicDescription:
        refuse_internal(name, "change the configs of")
        topic = require_topic(self.cluster.image, name)
        unknown = [key for key in delete if key not in DEFAULTS]
        if unknown:
            raise invalid_request(f"cannot delete unknown config {unknown[0]!r}")
        overrides = {k: v for k, v in topic.configs.items() if k not in delete}
        overrides.update(set_)
        LogConfig.from_dict(overrides, base=self.topic_defaults())
        if not validate_only:
            await self.cluster.propose(AlterTopicConfigs(name, freeze_configs(overrides)))
        return self.describe(name)

    async def alter_cluster_configs(self, set_: dict[str, str], delete: list[str],
                                    validate_only: bool) -> dict[str, str]:
        """The cluster-wide topic defaults with `set_` set and `delete` removed; checked
        over this (the controller's) broker's own defaults, applied live everywhere."""
        unknown = [key for key in [*set_, *delete] if key not in DEFAULTS]
        if unknown:
            raise BrokerError(Reason.INVALID_CONFIG,
                              f"{unknown[0]!r} is not a topic config: cluster-wide defaults "
                              f"are topic configs ({', '.join(sorted(DEFAULTS))})")
        configs = {k: v for k, v in self.cluster.image.cluster_configs.items()
                   if k not in delete}
        configs.update(set_)
        LogConfig.from_dict(configs, base=self.defaults)
        if not validate_only and configs != self.cluster.image.cluster_configs:
            await self.cluster.propose(AlterClusterConfigs(freeze_configs(configs)))
        return configs

    async def create_partitions(self, name: str, total: int,
                                validate_only: bool) -> TopicDescription:
        refuse_internal(name, "add partitions to")  # groups are placed by partition count
        if total > MAX_PARTITIONS:
            raise BrokerError(Reason.INVALID_PARTITIONS,
                f"partition count must be at most {MAX_PARTITIONS}, got {total}", {"topic": name})
        command = plan_create_partitions(self.cluster.image, name, total)
        if not validate_only:
            await self.cluster.propose(command)
            await self.cluster.wait_for(lambda img: _all_led(img.topics.get(name)),
                                        LEADER_WAIT_S)
        return self.describe(name)

    async def reassign_partition(self, topic: str, index: int, replicas: list[int],
                                 validate_only: bool) -> TopicDescription:
        command = plan_reassignment(self.cluster.image, topic, index, replicas)
        if not validate_only:
            await self.cluster.propose(command)
        return self.describe(topic)

    async def drain_broker(self, broker_id: int, validate_only: bool) -> list[PartitionMove]:
        image = self.cluster.image
        commands = plan_drain(image, broker_id)
        moves = []
        for command in commands:
            if isinstance(command, ReassignPartition):
                info = image.partition(command.topic, command.partition)
                moves.append(PartitionMove(command.topic, command.partition,
                                           tuple(info.replicas) if info else (),
                                           tuple(command.replicas)))
        if not validate_only:
            for command in commands:
                await self.cluster.propose(command)
        return moves

    async def propose_as_controller(self, data: bytes) -> int:
        if not self.cluster.is_controller():
            address = self.cluster.address_of(self.cluster.controller_id)
            raise BrokerError(Reason.NOT_CONTROLLER,
                              f"broker {self.cluster.id} is not the controller",
                              {"leader": address} if address else {})
        try:
            command = decode_command(data)
        except ValueError as exc:
            raise invalid_request(f"not a metadata command: {exc}") from exc
        return await self.cluster.propose(command)

    def controller_address(self) -> str:
        """Where requests for the controller go (NOT_CONTROLLER while none is elected)."""
        address = self.cluster.address_of(self.cluster.controller_id)
        if address is None:
            raise BrokerError(Reason.NOT_CONTROLLER,
                              "no controller is elected right now; retry shortly")
        return address

    # ----------------------------------------------------------------- reads
    def list_topics(self, include_internal: bool = True) -> list[TopicSummary]:
        """Internal topics (named __*, such as __consumer_offsets) only when asked for."""
        image = self.cluster.image
        return [TopicSummary(t.name, len(t.partitions), t.replication_factor,
                             is_internal(t.name))
                for _, t in sorted(image.topics.items())
                if include_internal or not is_internal(t.name)]

    def describe(self, name: str) -> TopicDescription:
        topic = require_topic(self.cluster.image, name)
        effective = LogConfig.from_dict(topic.configs, base=self.topic_defaults()).to_dict()
        configs = tuple(ConfigEntry(k, v, k not in topic.configs)
                        for k, v in sorted(effective.items()))
        states = []
        for index, info in enumerate(topic.partitions):
            view = self.partition_info(name, index, info)
            local = self.cluster.partitions.get((name, index))
            if local is not None and not local.closed:
                states.append(PartitionState(view, local.log.log_start_offset,
                                             local.high_watermark, local.log.size_bytes,
                                             local.log.segment_count))
            else:
                states.append(PartitionState(view))
        return TopicDescription(name, topic.topic_id, topic.replication_factor,
                                tuple(states), configs)

    def metadata(self, names: list[str]) -> ClusterView:
        image = self.cluster.image
        for name in names:
            if name not in image.topics:
                raise unknown_topic(name)
        topics = []
        for name in names or sorted(image.topics):
            topic = image.topics[name]
            topics.append(TopicView(name, tuple(
                self.partition_info(name, i, info) for i, info in enumerate(topic.partitions))))
        brokers = tuple(BrokerEntry(b.id, b.host, b.port, b.rack or "", b.kafka_port,
                                    b.endpoints)
                        for _, b in sorted(image.brokers.items()))
        controller = self.cluster.controller_id
        return ClusterView(self.cluster.cluster_id, -1 if controller is None else controller,
                           brokers, tuple(topics))

    def partition_info(self, topic: str, index: int, info: PartitionInfo) -> PartitionView:
        replicas = list(info.replicas)
        leader, term = info.leader, info.leader_term
        # The in-sync set the leader reported, so that every broker gives the same answer;
        # before the first report of a new leader, the leader's own view.
        in_sync = set(replicas if info.in_sync is None else info.in_sync)
        local = self.cluster.partitions.get((topic, index))
        if local is not None and local.node.is_leader():
            leader, term = self.cluster.id, local.node.term
            node = local.node
            voters = set(node.config.voters)
            replicas = [r for r in replicas if r in voters] + sorted(voters - set(replicas))
            if info.in_sync is None or info.leader_term != term:
                in_sync = set(local.in_sync_replicas())
        isr = [r for r in replicas if r in in_sync]
        return PartitionView(index, leader, tuple(replicas), tuple(isr), max(term, 0),
                             tuple(info.target_replicas or ()))


def _all_led(topic: Any) -> bool:
    return topic is not None and all(p.leader >= 0 for p in topic.partitions)
