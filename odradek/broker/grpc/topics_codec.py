"""TopicAdmin's answers (odradek/broker/topics/types.py) as the gRPC messages."""

from __future__ import annotations

from odradek.broker.broker_configs import BrokerConfigEntry, Source
from odradek.broker.listeners import Addresses
from odradek.broker.topics.types import (
    ClusterView,
    PartitionMove,
    PartitionView,
    TopicDescription,
    TopicSummary,
)
from odradek.v1 import odradek_pb2 as pb


def partition_info(view: PartitionView) -> pb.PartitionInfo:
    return pb.PartitionInfo(partition=view.partition, leader=view.leader,
                            replicas=view.replicas, in_sync_replicas=view.in_sync_replicas,
                            leader_epoch=view.leader_epoch,
                            target_replicas=view.target_replicas)


def topic_description(desc: TopicDescription) -> pb.TopicDescription:
    return pb.TopicDescription(
        name=desc.name, topic_id=desc.topic_id, replication_factor=desc.replication_factor,
        partitions=[pb.PartitionState(info=partition_info(s.info),
                                      log_start_offset=s.log_start_offset,
                                      high_watermark=s.high_watermark,
                                      size_bytes=s.size_bytes, segments=s.segments)
                    for s in desc.partitions],
        configs=[pb.ConfigEntry(name=c.name, value=c.value, is_default=c.is_default)
                 for c in desc.configs])


def metadata(view: ClusterView, addresses: Addresses | None = None) -> pb.MetadataResponse:
    """The brokers as the listener the request came in on names them (`addresses`; None:
    the broker's own gRPC listener)."""
    brokers = [(b, (b.host, b.port) if addresses is None else addresses.of(b))
               for b in view.brokers]
    return pb.MetadataResponse(
        cluster_id=view.cluster_id, controller_id=view.controller_id,
        brokers=[pb.BrokerInfo(id=b.id, host=where[0], port=where[1], rack=b.rack)
                 for b, where in brokers if where is not None],
        topics=[pb.TopicMetadata(name=t.name,
                                 partitions=[partition_info(p) for p in t.partitions])
                for t in view.topics])


def topic_list(topics: list[TopicSummary]) -> pb.ListTopicsResponse:
    return pb.ListTopicsResponse(topics=[
        pb.TopicSummary(name=t.name, partitions=t.partitions,
                        replication_factor=t.replication_factor, internal=t.internal)
        for t in topics])


def drain_moves(moves: list[PartitionMove]) -> pb.DrainBrokerResponse:
    return pb.DrainBrokerResponse(moves=[
        pb.PartitionMove(topic=m.topic, partition=m.partition, from_replicas=m.from_replicas,
                         to_replicas=m.to_replicas) for m in moves])


_SOURCES = {Source.DEFAULT: pb.CONFIG_SOURCE_DEFAULT, Source.STATIC: pb.CONFIG_SOURCE_STATIC,
            Source.DYNAMIC: pb.CONFIG_SOURCE_DYNAMIC}


def broker_config(c: BrokerConfigEntry) -> pb.BrokerConfig:
    return pb.BrokerConfig(name=c.name, value="" if c.sensitive else c.value,
                           source=_SOURCES[c.source], sensitive=c.sensitive,
                           documentation=c.documentation)
