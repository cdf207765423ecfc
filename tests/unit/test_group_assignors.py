"""Assignors: every subscribed partition to exactly one subscribed member, balance, and
stickiness; and the incremental revoke-before-assign protocol over many rebalances."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from odradek.broker.groups.assignors import (
    ASSIGNORS,
    range_assign,
    round_robin_assign,
    sticky_assign,
)
from odradek.broker.groups.state import Group, JoinRequest

TOPICS = ["a", "b", "c"]

members_st = st.dictionaries(
    st.text("mnopqrstuvw", min_size=1, max_size=4),
    st.frozensets(st.sampled_from(TOPICS), min_size=1), min_size=1, max_size=8)
partitions_st = st.fixed_dictionaries({t: st.integers(0, 12) for t in TOPICS})


def _check_exactly_once(members: dict[str, frozenset[str]], partitions: dict[str, int],
                        out: dict[str, set[tuple[str, int]]]) -> None:
    assert set(out) == set(members)
    seen: list[tuple[str, int]] = [tp for tps in out.values() for tp in tps]
    assert len(seen) == len(set(seen)), "a partition went to two members"
    subscribed = {t for topics in members.values() for t in topics}
    assert set(seen) == {(t, p) for t in subscribed for p in range(partitions[t])}
    for member, tps in out.items():
        assert all(t in members[member] for t, _ in tps), "given a topic it did not subscribe to"


@given(members_st, partitions_st, st.sampled_from(sorted(ASSIGNORS)))
def test_every_partition_exactly_once_to_a_subscriber(members, partitions, name):
    _check_exactly_once(members, partitions, ASSIGNORS[name](members, partitions, {}))


@given(st.lists(st.text("xyz", min_size=1, max_size=3), min_size=1, max_size=9, unique=True),
       partitions_st, st.sampled_from(["roundrobin", "sticky"]))
def test_balanced_when_subscriptions_are_equal(names, partitions, name):
    members = {m: frozenset(TOPICS) for m in names}
    loads = [len(tps) for tps in ASSIGNORS[name](members, partitions, {}).values()]
    assert max(loads) - min(loads) <= 1


def test_range_gives_contiguous_ranges_per_topic():
    out = range_assign({"m1": frozenset("a"), "m2": frozenset("a")}, {"a": 5}, {})
    assert out == {"m1": {("a", 0), ("a", 1), ("a", 2)}, "m2": {("a", 3), ("a", 4)}}


def test_round_robin_deals_in_turn():
    out = round_robin_assign({"m1": frozenset("a"), "m2": frozenset("a")}, {"a": 4}, {})
    assert out == {"m1": {("a", 0), ("a", 2)}, "m2": {("a", 1), ("a", 3)}}


@given(st.integers(2, 8), st.integers(1, 40), st.data())
def test_sticky_moves_only_what_balance_needs(n, count, data):
    """A member joining or leaving moves at most what the new quota requires; members
    not involved keep every partition they can keep."""
    names = [f"m{i}" for i in range(n)]
    members = {m: frozenset("a") for m in names}
    before = sticky_assign(members, {"a": count}, {})
    if data.draw(st.booleans()):
        gone = data.draw(st.sampled_from(names))
        after_members = {m: t for m, t in members.items() if m != gone}
        after = sticky_assign(after_members, {"a": count}, before)
        for m in after_members:
            assert before[m] <= after[m], "a survivor lost a partition when a member left"
    else:
        after_members = {**members, "new": frozenset("a")}
        after = sticky_assign(after_members, {"a": count}, before)
        quota = -(-count // len(after_members))
        for m in members:
            assert len(before[m] - after[m]) <= max(0, len(before[m]) - (quota - 1))
    loads = [len(v) for v in after.values()]
    assert max(loads) - min(loads) <= 1


@given(st.lists(st.tuples(st.sampled_from(["join", "leave", "ack"]), st.integers(0, 5)),
                max_size=40),
       st.sampled_from(sorted(ASSIGNORS)))
def test_incremental_protocol_never_gives_a_partition_to_two_owners(steps, strategy):
    """Through any sequence of joins, leaves and acknowledgements: no partition is owned
    by two members at once, a member is only sent partitions nobody else owns, and once
    every member acknowledged, the assignment is the assignor's target."""
    group = Group("g")
    partitions = {"a": 7, "b": 3}
    names = [f"m{i}" for i in range(6)]
    now = 0.0
    for action, i in steps:
        now += 0.1
        name = names[i]
        member_ids = {m.instance_id: m.member_id for m in group.members.values()}
        if action == "join" and name not in member_ids:
            group.join(JoinRequest("", name, "", frozenset("ab"), 10_000, 60_000, strategy), now)
        elif action == "leave" and name in member_ids:
            group.remove(member_ids[name])
        elif action == "ack" and name in member_ids:
            m = group.members[member_ids[name]]
            group.acknowledge(m.member_id, m.sent_generation)
        owned_before = {mid: set(m.owned) for mid, m in group.members.items()}
        changes = group.reconcile(partitions, now)
        for mid, tps in changes.items():
            others = set().union(*(o for k, o in owned_before.items() if k != mid))
            assert not (tps - owned_before[mid]) & others, "given a partition another owns"
        owners = [tp for m in group.members.values() for tp in m.owned]
        assert len(owners) == len(set(owners))
    for _ in range(len(group.members) + 1):  # everyone acknowledges until settled
        for m in list(group.members.values()):
            group.acknowledge(m.member_id, m.sent_generation)
        group.reconcile(partitions, now)
    if group.members:
        assert group.state == "STABLE"
        owned = [tp for m in group.members.values() for tp in m.owned]
        assert sorted(owned) == sorted((t, p) for t, c in partitions.items() for p in range(c))
