"""A broker's settings as it describes them (`odradek cluster describe-configs`, Kafka's
DescribeConfigs for a BROKER resource): each with its value and where that came from.

The command line hands the broker its flags (the front end that knows them); the broker
adds the defaults it gives topics, from --config or built in."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from odradek.storage import DEFAULTS, LogConfig


class Source(enum.Enum):
    DEFAULT = "default"
    STATIC = "static"  # the command line or the environment, at start-up
    DYNAMIC = "dynamic"  # a cluster-wide default in the metadata (AlterClusterConfigs)


@dataclass(frozen=True)
class BrokerConfigEntry:
    name: str
    value: str
    source: Source
    documentation: str = ""
    sensitive: bool = False


def describe(flags: Sequence[BrokerConfigEntry],
             topic_defaults: Mapping[str, str]) -> list[BrokerConfigEntry]:
    """The flags, then every topic config's broker-level default, sorted by name."""
    effective = LogConfig.from_dict(topic_defaults).to_dict()
    built_in = DEFAULTS
    topics = [BrokerConfigEntry(
        k, v, Source.STATIC if k in topic_defaults and v != built_in.get(k) else Source.DEFAULT,
        f"the default of the topic config {k} for topics that do not set it (--config)")
        for k, v in effective.items()]
    return sorted([*flags, *topics], key=lambda e: e.name)


def with_cluster_defaults(entries: Sequence[BrokerConfigEntry],
                          cluster: Mapping[str, str]) -> list[BrokerConfigEntry]:
    """The entries with the topic defaults that the cluster-wide ones replace."""
    return [BrokerConfigEntry(e.name, cluster[e.name], Source.DYNAMIC,
                              f"the cluster-wide default of the topic config {e.name} "
                              "(odradek cluster alter-configs), over --config")
            if e.name in cluster and e.name in DEFAULTS else e for e in entries]
