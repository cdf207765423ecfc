"""Topic resources, as plain functions: desired state, what the brokers report, the plan
that takes one to the other, and the status that tells the truth about it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from odradek.operator.conditions import Outcome

RETAIN_ANNOTATION = "odradek.io/retain-on-delete"
DEFAULT_REPLICATION_FACTOR = 3


class SpecError(ValueError):
    """The resource asks for something no broker could do (the schema catches most)."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


def desired(spec: Mapping[str, Any], resource_name: str) -> TopicSpec:
    partitions = spec.get("partitions")
    if not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 1:
        raise SpecError(f"spec.partitions must be a positive integer, not {partitions!r}")
    rf = spec.get("replicationFactor", DEFAULT_REPLICATION_FACTOR)
    if not isinstance(rf, int) or isinstance(rf, bool) or rf < 1:
        raise SpecError(f"spec.replicationFactor must be a positive integer, not {rf!r}")
    config: dict[str, str] = {}
    for key, value in (spec.get("config") or {}).items():
        if isinstance(value, (dict, list)) or value is None:
            raise SpecError(f"spec.config[{key!r}] must be a string or a number")
        # YAML booleans and numbers are the same configs written without quotes.
        config[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return TopicSpec(str(spec.get("topicName") or resource_name), partitions, rf, config)


def retained(annotations: Mapping[str, str] | None) -> bool:
    value = (annotations or {}).get(RETAIN_ANNOTATION, "")
    return value.strip().lower() in ("true", "yes", "1")


# -- what the brokers report ---------------------------------------------------------------

@dataclass(frozen=True)
class PartitionView:
    partition: int
    leader: int
    replicas: tuple[int, ...]
    in_sync: tuple[int, ...] = ()
    target: tuple[int, ...] = ()  # a reassignment under way moves to these


@dataclass(frozen=True)
class TopicView:
    name: str
    topic_id: str
    partitions: tuple[PartitionView, ...]
    overrides: dict[str, str]  # configs set on the topic (not the brokers' defaults)


def observe(description: Any) -> TopicView:
    """A TopicDescription (odradek.v1) as plain values."""
    parts = tuple(sorted((
        PartitionView(p.info.partition, p.info.leader, tuple(p.info.replicas),
                      tuple(p.info.in_sync_replicas), tuple(p.info.target_replicas))
        for p in description.partitions), key=lambda p: p.partition))
    overrides = {c.name: c.value for c in description.configs if not c.is_default}
    return TopicView(description.name, description.topic_id, parts, overrides)


# -- the plan ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Create:
    spec: TopicSpec


@dataclass(frozen=True)
class AlterConfigs:
    set: dict[str, str]
    delete: tuple[str, ...]


@dataclass(frozen=True)
class AddPartitions:
    total: int


@dataclass(frozen=True)
class Reassign:
    partition: int
    replicas: tuple[int, ...]


Action = Create | AlterConfigs | AddPartitions | Reassign


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    # Set when the resource asks for what the operator will not do: nothing is changed.
    refused: Outcome | None = None
    # Set when the brokers are still carrying out an earlier step (a reassignment).
    waiting: str = ""


def config_diff(wanted: Mapping[str, str], overrides: Mapping[str, str]) -> AlterConfigs | None:
    """Configs to set and overrides to remove so that the topic has exactly `wanted`:
    a config set outside the resource (with the CLI, say) is drift, and is reverted."""
    to_set = {k: v for k, v in wanted.items() if overrides.get(k) != v}
    to_delete = tuple(sorted(k for k in overrides if k not in wanted))
    return AlterConfigs(to_set, to_delete) if to_set or to_delete else None


def new_replicas(current: Sequence[int], factor: int, brokers: Sequence[int],
                 load: Mapping[int, int]) -> tuple[int, ...]:
    """Replicas for a new replication factor: a shrink drops the last replicas (the first,
    the preferred leader, stays); a growth adds the least loaded brokers not yet holding
    the partition."""
    if factor <= len(current):
        return tuple(current[:factor])
    spare = sorted((b for b in brokers if b not in current), key=lambda b: (load.get(b, 0), b))
    return (*current, *spare[:factor - len(current)])


def plan(spec: TopicSpec, view: TopicView | None, brokers: Sequence[int]) -> Plan:
    if view is None:
        return Plan((Create(spec),))
    have = len(view.partitions)
    if spec.partitions < have:
        return Plan(refused=Outcome(
            "False", "PartitionsDecreaseRefused",
            f"spec.partitions is {spec.partitions} but the topic has {have} partitions: "
            f"partitions cannot be removed; nothing was changed"))
    if spec.replication_factor > len(brokers):
        return Plan(refused=Outcome(
            "False", "NotEnoughBrokers",
            f"replicationFactor {spec.replication_factor} needs as many brokers, "
            f"there are {len(brokers)}; nothing was changed"))
    actions: list[Action] = []
    configs = config_diff(spec.config, view.overrides)
    if configs:
        actions.append(configs)
    if spec.partitions > have:
        actions.append(AddPartitions(spec.partitions))
    moving = [p.partition for p in view.partitions if p.target]
    load = Counter(b for p in view.partitions for b in (p.target or p.replicas))
    for p in view.partitions:
        if p.target or len(p.replicas) == spec.replication_factor:
            continue
        replicas = new_replicas(p.replicas, spec.replication_factor, brokers, load)
        load.update(b for b in replicas if b not in p.replicas)
        actions.append(Reassign(p.partition, replicas))
    waiting = f"reassigning partitions {moving}" if moving else ""
    return Plan(tuple(actions), waiting=waiting)


# -- ownership of a topic name -------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Claim:
    """A Topic resource claiming a topic name. The one that already owns the topic wins,
    then the oldest: so a newcomer never takes a topic from the resource that made it."""

    not_owner: bool
    created: str
    namespace: str
    name: str


def winner(claims: Sequence[Claim]) -> Claim | None:
    return min(claims) if claims else None


# -- status --------------------------------------------------------------------------------

def outcome(spec: TopicSpec, view: TopicView | None, waiting: str = "") -> Outcome:
    """Ready when the brokers hold what the spec asks for."""
    if view is None:
        return Outcome("False", "NotCreated", f"topic {spec.name} does not exist yet")
    if waiting:
        return Outcome("False", "Reassigning", waiting)
    if len(view.partitions) != spec.partitions:
        return Outcome("False", "Reconciling",
                       f"{len(view.partitions)} of {spec.partitions} partitions")
    wrong = [p.partition for p in view.partitions if len(p.replicas) != spec.replication_factor]
    if wrong:
        return Outcome("False", "Reassigning", f"partitions {wrong} have not yet "
                       f"{spec.replication_factor} replicas")
    if config_diff(spec.config, view.overrides):
        return Outcome("False", "Reconciling", "configs differ from spec.config")
    leaderless = [p.partition for p in view.partitions if p.leader < 0]
    if leaderless:
        return Outcome("False", "LeaderNotAvailable", f"partitions {leaderless} have no leader")
    return Outcome("True", "Ready", f"{spec.partitions} partitions, replication factor "
                   f"{spec.replication_factor}")


def partitions_status(view: TopicView | None) -> list[dict[str, Any]]:
    return [{"partition": p.partition, "leader": p.leader, "replicas": list(p.replicas),
             "inSyncReplicas": list(p.in_sync)} for p in (view.partitions if view else ())]
