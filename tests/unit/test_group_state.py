"""The group state machine with a fake clock: joins, cooperative handover, static members,
session and poll timeouts, commit fencing, and the persisted form."""

from __future__ import annotations

import pytest

from odradek.broker.errors import BrokerError
from odradek.broker.groups.state import Group, JoinRequest

PARTITIONS = {"t": 6}


def join(group: Group, now: float, instance: str = "", member_id: str = "",
         session_ms: int = 3000, poll_ms: int = 60_000, strategy: str = "sticky") -> str:
    member, _ = group.join(JoinRequest(member_id, instance, "test", frozenset({"t"}),
                                       session_ms, poll_ms, strategy), now)
    return member.member_id


def settle(group: Group, now: float) -> None:
    for _ in range(5):
        for m in list(group.members.values()):
            group.acknowledge(m.member_id, m.sent_generation)
        group.reconcile(PARTITIONS, now)


def test_second_member_gets_partitions_only_after_the_first_acknowledges():
    g = Group("g")
    a = join(g, 0)
    assert g.reconcile(PARTITIONS, 0) == {a: {("t", p) for p in range(6)}}
    b = join(g, 1)
    changes = g.reconcile(PARTITIONS, 1)
    assert set(changes) == {a}  # b gets nothing yet: a still owns everything
    assert len(changes[a]) == 3
    assert len(g.members[a].revoking) == 3 and g.state == "RECONCILING"
    assert g.acknowledge(a, g.members[a].sent_generation)
    changes = g.reconcile(PARTITIONS, 1)
    assert set(changes) == {b} and len(changes[b]) == 3
    assert g.state == "STABLE"


def test_a_stale_acknowledgement_frees_nothing():
    g = Group("g")
    a = join(g, 0)
    g.reconcile(PARTITIONS, 0)
    join(g, 0)
    g.reconcile(PARTITIONS, 0)
    assert not g.acknowledge(a, g.members[a].sent_generation - 1)
    assert g.members[a].revoking


def test_session_timeout_removes_a_silent_member_and_its_partitions_move():
    g = Group("g")
    a, b = join(g, 0), join(g, 0)
    settle(g, 0)
    g.heartbeat(a, 0, 2.5)
    assert g.expired(2.9) == []
    assert g.expired(3.1) == [(b, "session timeout")]
    g.remove(b)
    changes = g.reconcile(PARTITIONS, 3.1)
    assert changes == {a: {("t", p) for p in range(6)}}


def test_max_poll_interval_exceeded_removes_the_member():
    g = Group("g")
    a = join(g, 0, poll_ms=2000)
    g.heartbeat(a, ms_since_poll=2500, now=1.0)
    assert g.expired(1.0) == [(a, "max poll interval exceeded")]


def test_unacknowledged_revocation_expires_after_the_poll_interval():
    g = Group("g")
    a = join(g, 0, poll_ms=5000)
    g.reconcile(PARTITIONS, 0)
    join(g, 0, poll_ms=5000)
    g.reconcile(PARTITIONS, 0)
    g.heartbeat(a, 0, 5.5)
    assert (a, "revocation not acknowledged in time") in g.expired(5.5)


def test_static_member_takes_its_place_back_without_a_rebalance():
    g = Group("g")
    a = join(g, 0, instance="i-a")
    join(g, 0, instance="i-b")
    settle(g, 0)
    generation = g.generation
    owned = set(g.members[a].owned)
    assert g.disconnected(a, 1.0, wall_ms=1_000)
    again = join(g, 2.0, instance="i-a")
    assert again == a
    assert g.reconcile(PARTITIONS, 2.0) == {}
    assert g.generation == generation and g.members[a].owned == owned


def test_a_second_live_instance_with_the_same_id_replaces_the_first():
    g = Group("g")
    a = join(g, 0, instance="i-a")
    member, replaced = g.join(JoinRequest("", "i-a", "x", frozenset({"t"}), 3000, 60_000,
                                          "sticky"), 1)
    assert member.member_id == a and replaced == a


def test_strategy_must_match_the_group():
    g = Group("g")
    join(g, 0, strategy="range")
    with pytest.raises(BrokerError) as info:
        join(g, 0, strategy="roundrobin")
    assert info.value.reason == "INCONSISTENT_GROUP_PROTOCOL"


@pytest.mark.parametrize("session_ms", [10, 10_000_000])
def test_session_timeout_bounds(session_ms):
    with pytest.raises(BrokerError) as info:
        join(Group("g"), 0, session_ms=session_ms)
    assert info.value.reason == "INVALID_SESSION_TIMEOUT"


def test_commits_are_fenced():
    g = Group("g")
    a, b = join(g, 0), join(g, 0)
    settle(g, 0)
    mine = sorted(g.members[a].owned)
    theirs = sorted(g.members[b].owned)
    g.check_commit(a, g.generation, mine)
    with pytest.raises(BrokerError) as info:
        g.check_commit(a, g.generation, theirs[:1])
    assert info.value.reason == "FENCED_MEMBER"
    with pytest.raises(BrokerError) as info:
        g.check_commit("ghost", g.generation, mine)
    assert info.value.reason == "UNKNOWN_MEMBER_ID"
    with pytest.raises(BrokerError) as info:
        g.check_commit(a, g.generation + 1, mine)
    assert info.value.reason == "ILLEGAL_GENERATION"
    with pytest.raises(BrokerError) as info:
        g.check_commit("", -1, mine)
    assert info.value.reason == "NON_EMPTY_GROUP"
    Group("empty").check_commit("", -1, mine)  # outside the protocol: fine with no members


def test_a_revoking_member_may_still_commit_what_it_gives_up():
    g = Group("g")
    a = join(g, 0)
    g.reconcile(PARTITIONS, 0)
    join(g, 0)
    g.reconcile(PARTITIONS, 0)
    revoking = sorted(g.members[a].revoking)
    g.check_commit(a, g.generation, revoking)


def test_persisted_form_round_trips_and_gives_members_a_session_to_return():
    g = Group("g")
    a = join(g, 0, instance="i-a")
    join(g, 0)
    settle(g, 0)
    back = Group.from_value("g", g.to_value(), now=100.0, wall_ms=50_000)
    assert back.generation == g.generation and back.strategy == g.strategy
    assert {m: back.members[m].owned for m in back.members} == \
        {m: g.members[m].owned for m in g.members}
    assert back.members[a].instance_id == "i-a"
    assert back.expired(102.0) == []
    assert len(back.expired(104.0)) == 2
    assert back.reconcile(PARTITIONS, 100.0) == {}


def test_a_member_gone_before_the_coordinator_moved_is_not_given_a_new_session():
    g = Group("g")
    a = join(g, 0, session_ms=3000)
    b = join(g, 0, session_ms=3000)
    settle(g, 0)
    g.disconnected(a, 1.0, wall_ms=10_000)
    back = Group.from_value("g", g.to_value(), now=500.0, wall_ms=12_500)
    assert back.expired(500.0) == []
    assert back.expired(500.6) == [(a, "session timeout")]
    assert b not in dict(back.expired(500.6))
    again = join(back, 500.1, member_id=a)
    assert again == a and back.members[a].disconnected_ms == 0


def test_a_revocation_in_progress_survives_a_coordinator_move():
    g = Group("g")
    a = join(g, 0)
    g.reconcile(PARTITIONS, 0)
    b = join(g, 0)
    g.reconcile(PARTITIONS, 0)
    revoking = g.members[a].revoking
    assert revoking
    back = Group.from_value("g", g.to_value(), now=10.0, wall_ms=1)
    assert back.members[a].revoking == revoking
    assert back.reconcile(PARTITIONS, 10.0) == {}  # b still waits
    assert back.acknowledge(a, back.members[a].sent_generation)
    assert back.reconcile(PARTITIONS, 10.0) == {b: revoking}


def test_held_partitions_are_taken_from_their_owners_and_given_back():
    """A reset of a live group: the held partitions are revoked from every member, the
    coordinator waits until none owns one, and releasing them assigns them again."""
    g = Group("g")
    a, b = join(g, 0), join(g, 0)
    settle(g, 0)
    held = {("t", 0), ("t", 1), ("t", 4)}
    g.held |= held
    changes = g.reconcile(PARTITIONS, 1)
    assert changes and all(not (tps & held) for tps in changes.values())
    assert not g.holds_released() and g.state == "RECONCILING"
    for m in (a, b):
        g.acknowledge(m, g.members[m].sent_generation)
    assert g.holds_released()
    assert not any(m.owned & held for m in g.members.values())
    g.held -= held
    settle(g, 2)
    owned = set().union(*(m.owned for m in g.members.values()))
    assert owned == {("t", p) for p in range(6)} and g.state == "STABLE"
