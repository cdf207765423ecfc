"""Topic domain logic: desired state, diff against what the brokers report, the plan."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from odradek.operator import topics as t
from odradek.operator.conditions import Outcome, set_condition, worth_an_event


def view(partitions: int = 3, rf: int = 3, overrides: dict[str, str] | None = None,
         target: dict[int, tuple[int, ...]] | None = None) -> t.TopicView:
    parts = tuple(t.PartitionView(p, p % 3, tuple((p + i) % 3 for i in range(rf)),
                                  tuple((p + i) % 3 for i in range(rf)),
                                  (target or {}).get(p, ())) for p in range(partitions))
    return t.TopicView("orders", "id-1", parts, dict(overrides or {}))


def test_desired_defaults_and_stringifies() -> None:
    spec = t.desired({"partitions": 3, "config": {"retention.ms": 1000,
                                                   "preallocate": True}}, "orders")
    assert spec == t.TopicSpec("orders", 3, 3, {"retention.ms": "1000", "preallocate": "true"})
    assert t.desired({"partitions": 1, "topicName": "x.y"}, "r").name == "x.y"


@pytest.mark.parametrize("spec", [{}, {"partitions": 0}, {"partitions": True},
                                  {"partitions": 1, "replicationFactor": "3"},
                                  {"partitions": 1, "config": {"a": {"b": 1}}}])
def test_desired_refuses_what_no_broker_could_do(spec: dict[str, object]) -> None:
    with pytest.raises(t.SpecError):
        t.desired(spec, "x")


def test_missing_topic_is_created() -> None:
    spec = t.TopicSpec("orders", 3, 3, {"retention.ms": "1"})
    assert t.plan(spec, None, [0, 1, 2]).actions == (t.Create(spec),)


def test_in_sync_topic_needs_nothing_and_is_ready() -> None:
    spec = t.TopicSpec("orders", 3, 3, {"retention.ms": "1"})
    current = view(overrides={"retention.ms": "1"})
    assert t.plan(spec, current, [0, 1, 2]) == t.Plan()
    assert t.outcome(spec, current).ready


def test_config_drift_is_reverted() -> None:
    spec = t.TopicSpec("orders", 3, 3, {"retention.ms": "1", "cleanup.policy": "compact"})
    current = view(overrides={"retention.ms": "5", "cleanup.policy": "compact",
                              "segment.bytes": "1024"})
    assert t.plan(spec, current, [0, 1, 2]).actions == (
        t.AlterConfigs({"retention.ms": "1"}, ("segment.bytes",)),)
    assert t.outcome(spec, current).reason == "Reconciling"


def test_partition_decrease_is_refused_and_changes_nothing() -> None:
    spec = t.TopicSpec("orders", 2, 3, {"retention.ms": "9"})
    plan = t.plan(spec, view(3), [0, 1, 2])
    assert plan.actions == ()
    assert plan.refused and plan.refused.reason == "PartitionsDecreaseRefused"


def test_partitions_grow() -> None:
    plan = t.plan(t.TopicSpec("orders", 5, 3), view(3), [0, 1, 2])
    assert plan.actions == (t.AddPartitions(5),)


def test_replication_factor_change_is_a_reassignment() -> None:
    up = t.plan(t.TopicSpec("orders", 2, 3), view(2, rf=1), [0, 1, 2])
    assert up.actions == (t.Reassign(0, (0, 2, 1)), t.Reassign(1, (1, 0, 2)))
    down = t.plan(t.TopicSpec("orders", 2, 1), view(2, rf=3), [0, 1, 2])
    assert down.actions == (t.Reassign(0, (0,)), t.Reassign(1, (1,)))


def test_growth_spreads_new_replicas_over_the_least_loaded_brokers() -> None:
    assert t.new_replicas([0], 2, [0, 1, 2, 3], {1: 4, 2: 1, 3: 1}) == (0, 2)


def test_running_reassignment_is_waited_for() -> None:
    plan = t.plan(t.TopicSpec("orders", 2, 3), view(2, rf=1, target={0: (0, 1, 2)}),
                  [0, 1, 2])
    assert plan.actions == (t.Reassign(1, (1, 0, 2)),)
    assert plan.waiting
    assert t.outcome(t.TopicSpec("orders", 2, 3), view(2, rf=1), plan.waiting).reason == (
        "Reassigning")


def test_too_few_brokers_is_refused() -> None:
    plan = t.plan(t.TopicSpec("orders", 1, 5), view(1), [0, 1, 2])
    assert plan.refused and plan.refused.reason == "NotEnoughBrokers" and not plan.actions


def test_the_owner_then_the_oldest_claim_wins() -> None:
    owner = t.Claim(False, "2024-01-02T00:00:00Z", "b", "newer-but-owner")
    older = t.Claim(True, "2024-01-01T00:00:00Z", "a", "older")
    assert t.winner([older, owner]) == owner
    assert t.winner([t.Claim(True, "2024-03-01T00:00:00Z", "a", "x"), older]) == older
    assert t.winner([]) is None


def test_retain_annotation() -> None:
    assert t.retained({t.RETAIN_ANNOTATION: "true"})
    assert not t.retained({t.RETAIN_ANNOTATION: "false"}) and not t.retained(None)


def test_observe_reads_a_description() -> None:
    info = NS(partition=0, leader=1, replicas=[1, 2], in_sync_replicas=[1], target_replicas=[])
    desc = NS(name="o", topic_id="x", partitions=[NS(info=info)], configs=[
        NS(name="retention.ms", value="1", is_default=False),
        NS(name="segment.bytes", value="9", is_default=True)])
    seen = t.observe(desc)
    assert seen.overrides == {"retention.ms": "1"}
    assert t.partitions_status(seen) == [
        {"partition": 0, "leader": 1, "replicas": [1, 2], "inSyncReplicas": [1]}]


def test_conditions_keep_transition_time_and_announce_failures_once() -> None:
    bad = Outcome("False", "InvalidConfig", "no")
    first = set_condition([], "Ready", bad, 1, at="t1")
    again = set_condition(first, "Ready", bad, 2, at="t2")
    assert again[0]["lastTransitionTime"] == "t1" and again[0]["observedGeneration"] == 2
    assert worth_an_event([], bad) and not worth_an_event(first, bad)
    assert not worth_an_event(first, Outcome("True", "Ready"))
    good = set_condition(first, "Ready", Outcome("True", "Ready"), 3, at="t3")
    assert good[0]["lastTransitionTime"] == "t3"
