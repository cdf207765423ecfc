"""Kafka's cluster and topic admin APIs beyond create and delete: CreatePartitions,
DeleteRecords (at the partition's leader), DescribeConfigs, AlterConfigs and
IncrementalAlterConfigs (topics) and DescribeCluster, over TopicAdmin as the gRPC Admin
service (changes forwarded to the controller)."""

from __future__ import annotations

import asyncio
from typing import Any

from odradek.broker.auth import operations as op
from odradek.broker.auth.access import Access
from odradek.broker.broker_configs import Source
from odradek.broker.errors import BrokerError, Reason
from odradek.broker.kafka import cluster_configs, codec
from odradek.broker.kafka import errors as err
from odradek.broker.listeners import Addresses
from odradek.broker.peers.forward import GrpcAdminForwarder
from odradek.broker.topic_admin import TopicAdmin
from odradek.broker.topics.reads import check_partition_request
from odradek.v1 import odradek_pb2 as pb

TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4
# DescribeConfigs' config_source values.
TOPIC_CONFIG_SOURCE = 1
DYNAMIC_DEFAULT_BROKER_SOURCE = 3
STATIC_BROKER_SOURCE = 4
DEFAULT_CONFIG_SOURCE = 5
_BROKER_SOURCES = {Source.STATIC: STATIC_BROKER_SOURCE, Source.DEFAULT: DEFAULT_CONFIG_SOURCE,
                   Source.DYNAMIC: DYNAMIC_DEFAULT_BROKER_SOURCE}
STRING_CONFIG_TYPE = 2
# IncrementalAlterConfigs operations.
SET = 0
DELETE = 1


class AdminApis:
    def __init__(self, admin: TopicAdmin, forwarder: GrpcAdminForwarder,
                 addresses: Addresses) -> None:
        self.admin = admin
        self.forwarder = forwarder
        self.addresses = addresses

    async def create_partitions(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(37, version)
        results = []
        for t in body.topics:
            code, message = err.NONE, None
            try:
                op.create_partitions(access, t.name)
                if t.assignments:
                    raise BrokerError(Reason.INVALID_REPLICA_ASSIGNMENT,
                                      "manual replica assignments are not supported")
                if self.admin.cluster.is_controller():
                    await self.admin.create_partitions(t.name, t.count,
                                                       bool(body.validate_only))
                else:
                    await self.forwarder.forward(
                        self.admin.controller_address(), "CreatePartitions",
                        pb.CreatePartitionsRequest(name=t.name, total_count=t.count,
                                                   validate_only=bool(body.validate_only)))
            except Exception as exc:
                code, message = err.error_of(exc, "CreatePartitions")
            results.append(codec.nested(module, "CreatePartitionsTopicResult", name=t.name,
                                        error_code=code, error_message=message))
        return codec.make(module.CreatePartitionsResponse, results=tuple(results))

    async def delete_records(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(21, version)
        timeout_s = max(codec.ms(body.timeout), 1) / 1000

        async def one(topic: str, index: int, offset: int) -> Any:
            code, low = err.NONE, -1
            try:
                check_partition_request(topic, index)
                op.delete_records(access, topic)
                low = await self.admin.delete_records(topic, index, offset, timeout_s)
            except Exception as exc:
                code, _ = err.error_of(exc, "DeleteRecords")
            return codec.nested(module, "DeleteRecordsPartitionResult",
                                partition_index=index, low_watermark=low, error_code=code)

        topics = []
        for t in body.topics:
            parts = await asyncio.gather(*(one(t.name, p.partition_index, p.offset)
                                           for p in t.partitions))
            topics.append(codec.nested(module, "DeleteRecordsTopicResult", name=t.name,
                                       partitions=tuple(parts)))
        return codec.make(module.DeleteRecordsResponse, topics=tuple(topics))

    def describe_configs(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(32, version)
        results = []
        for r in body.resources:
            code, message = err.NONE, None
            configs: list[tuple[str, str, int, str | None]] = []  # name, value, source, doc
            try:
                wanted = set(r.configuration_keys) if r.configuration_keys else None
                configs = [c for c in self._configs(r.resource_type, r.resource_name, access)
                           if wanted is None or c[0] in wanted]
            except Exception as exc:
                code, message = err.error_of(exc, "DescribeConfigs")
            results.append(codec.nested(
                module, "DescribeConfigsResult", error_code=code, error_message=message,
                resource_type=r.resource_type, resource_name=r.resource_name,
                configs=tuple(codec.nested(
                    module, "DescribeConfigsResourceResult", name=name, value=value,
                    read_only=r.resource_type == BROKER_RESOURCE and r.resource_name != "",
                    is_default=source == DEFAULT_CONFIG_SOURCE, is_sensitive=False,
                    config_source=source, synonyms=(), config_type=STRING_CONFIG_TYPE,
                    documentation=doc) for name, value, source, doc in configs)))
        return codec.make(module.DescribeConfigsResponse, results=tuple(results))

    def _configs(self, kind: int, name: str,
                 access: Access) -> list[tuple[str, str, int, str | None]]:
        if kind == TOPIC_RESOURCE:
            if not access.may_describe_topic(name):
                raise BrokerError(Reason.TOPIC_AUTHORIZATION_FAILED,
                                  f"may not describe topic {name!r}")
            op.describe_topic_configs(access, name)
            return [(c.name, c.value, DEFAULT_CONFIG_SOURCE if c.is_default
                     else TOPIC_CONFIG_SOURCE, None)
                    for c in self.admin.describe(name).configs]
        if kind != BROKER_RESOURCE:
            raise BrokerError(Reason.INVALID_REQUEST,
                              f"resource type {kind} has no configs here")
        if name == "":  # the cluster-wide defaults (kafka-configs.sh --entity-default)
            op.describe_cluster_configs(access)
            return [(k, v, DYNAMIC_DEFAULT_BROKER_SOURCE, None)
                    for k, v in cluster_configs.described(self.admin.cluster.image.cluster_configs)]
        op.describe_cluster(access)
        me = str(self.admin.cluster.id)
        if name != me:
            raise BrokerError(Reason.INVALID_REQUEST,
                              f"this is broker {me}: ask broker {name} for its own configs")
        return [(c.name, "" if c.sensitive else c.value,
                 _BROKER_SOURCES[c.source],
                 c.documentation or None) for c in self.admin.described_broker_configs()]

    def describe_cluster(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(60, version)
        view = self.admin.metadata([])
        found = ((b, self.addresses.of(b)) for b in view.brokers)
        return codec.make(module.DescribeClusterResponse, error_code=err.NONE,
                          cluster_id=view.cluster_id, controller_id=view.controller_id,
                          brokers=tuple(codec.nested(module, "DescribeClusterBroker",
                                                     broker_id=b.id, host=where[0],
                                                     port=where[1], rack=b.rack or None)
                                        for b, where in found if where is not None),
                          cluster_authorized_operations=-2147483648)

    async def _alter_topic(self, name: str, set_: dict[str, str], delete: list[str],
                           validate_only: bool, access: Access) -> None:
        op.alter_topic_configs(access, name)
        if self.admin.cluster.is_controller():
            await self.admin.alter_configs(name, set_, delete, validate_only)
        else:
            await self.forwarder.forward(
                self.admin.controller_address(), "AlterTopicConfigs",
                pb.AlterTopicConfigsRequest(name=name, set=set_, delete=delete,
                                            validate_only=validate_only))

    async def _alter(self, kind: int, name: str, set_: dict[str, str], delete: list[str],
                     validate_only: bool, access: Access) -> None:
        if kind == TOPIC_RESOURCE:
            await self._alter_topic(name, set_, delete, validate_only, access)
            return
        if kind != BROKER_RESOURCE or name != "":
            raise BrokerError(Reason.INVALID_REQUEST,
                              "only topic configs and the cluster-wide defaults (a broker "
                              "resource with an empty name) can be altered; a broker's own "
                              "settings are its start-up flags")
        op.alter_cluster_configs(access)
        topic_set, topic_delete = cluster_configs.to_topic_configs(set_, delete)
        if self.admin.cluster.is_controller():
            await self.admin.alter_cluster_configs(topic_set, topic_delete, validate_only)
        else:
            await self.forwarder.forward(
                self.admin.controller_address(), "AlterClusterConfigs",
                pb.AlterClusterConfigsRequest(set=topic_set, delete=topic_delete,
                                              validate_only=validate_only))

    async def incremental_alter_configs(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(44, version)
        results = []
        for r in body.resources:
            code, message = err.NONE, None
            try:
                set_ = {c.name: c.value or "" for c in r.configs if c.config_operation == SET}
                delete = [c.name for c in r.configs if c.config_operation == DELETE]
                if any(c.config_operation not in (SET, DELETE) for c in r.configs):
                    raise BrokerError(Reason.INVALID_CONFIG, "APPEND and SUBTRACT are not "
                                      "supported; SET the whole list instead")
                await self._alter(r.resource_type, r.resource_name, set_, delete,
                                  bool(body.validate_only), access)
            except Exception as exc:
                code, message = err.error_of(exc, "IncrementalAlterConfigs")
            results.append(codec.nested(module, "AlterConfigsResourceResponse",
                                        error_code=code, error_message=message,
                                        resource_type=r.resource_type,
                                        resource_name=r.resource_name))
        return codec.make(module.IncrementalAlterConfigsResponse, responses=tuple(results))

    async def alter_configs(self, version: int, body: Any, access: Access) -> Any:
        """The legacy API: the configs given replace all of the topic's own."""
        module = codec.response_module(33, version)
        results = []
        for r in body.resources:
            code, message = err.NONE, None
            try:
                set_ = {c.name: c.value or "" for c in r.configs}
                if r.resource_type == BROKER_RESOURCE:  # the whole cluster-wide set
                    named = {cluster_configs.topic_config(k) for k in set_}
                    current = self.admin.cluster.image.cluster_configs
                else:
                    named = set(set_)
                    info = self.admin.cluster.image.topics.get(r.resource_name)
                    current = info.configs if info is not None else {}
                delete = [k for k in current if k not in named]
                await self._alter(r.resource_type, r.resource_name, set_, delete,
                                  bool(body.validate_only), access)
            except Exception as exc:
                code, message = err.error_of(exc, "AlterConfigs")
            results.append(codec.nested(module, "AlterConfigsResourceResponse",
                                        error_code=code, error_message=message,
                                        resource_type=r.resource_type,
                                        resource_name=r.resource_name))
        return codec.make(module.AlterConfigsResponse, responses=tuple(results))
