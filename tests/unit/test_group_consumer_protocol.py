"""The consumer protocol's (KIP-848) rules over the group state machine: a join keeps the
client's member id, the epoch is the last assignment's generation, only a report at that
epoch acknowledges a revocation, an epoch the coordinator never gave is fenced, and the
assignment goes out only to a member that lacks it."""

from __future__ import annotations

import pytest

from odradek.broker.errors import BrokerError, Reason
from odradek.broker.groups import consumer_protocol as consumer
from odradek.broker.groups.state import Group
from odradek.broker.groups.types import ConsumerHeartbeat

PARTITIONS = {"t": 4}
ALL = frozenset(("t", p) for p in range(4))


def beat(member_id: str, epoch: int, owned: frozenset[tuple[str, int]] | None = None,
         topics: frozenset[str] | None = None, assignor: str | None = None) -> ConsumerHeartbeat:
    return ConsumerHeartbeat(member_id, epoch, None, "test", -1, topics, owned, assignor)


def joined(group: Group, member_id: str) -> str:
    hb = beat(member_id, 0, topics=frozenset({"t"}))
    member, _ = group.join(consumer.join_request(hb, group), 0.0)
    group.reconcile(PARTITIONS, 0.0)
    return member.member_id


def test_a_join_keeps_the_clients_member_id_and_gets_an_epoch_and_assignment() -> None:
    group = Group("g")
    assert joined(group, "client-chosen-id") == "client-chosen-id"
    member = group.members["client-chosen-id"]
    answer = consumer.answer(beat("client-chosen-id", 0), member, joined=True)
    assert answer.member_epoch == member.sent_generation >= 1
    assert answer.assignment == ALL
    # Once the member is at that epoch, nothing more is sent.
    again = consumer.answer(beat("client-chosen-id", answer.member_epoch, owned=ALL), member,
                            joined=False)
    assert again.assignment is None


def test_only_a_report_at_the_current_epoch_acknowledges_a_revocation() -> None:
    group = Group("g")
    a = joined(group, "a")
    first_epoch = consumer.epoch_of(group.members[a])
    joined(group, "b")  # a is told to give up half
    member = group.members[a]
    assert member.revoking and consumer.epoch_of(member) > first_epoch
    kept = frozenset(member.assigned)
    # An older heartbeat (it may predate the revoking assignment) frees nothing, even
    # if what it reports leaves the revoked partitions out.
    assert not consumer.released(beat(a, first_epoch, owned=kept), member)
    # At the current epoch, still holding them: not yet.
    assert not consumer.released(beat(a, consumer.epoch_of(member), owned=ALL), member)
    assert consumer.released(beat(a, consumer.epoch_of(member), owned=kept), member)


def test_an_epoch_never_given_is_fenced_and_a_behind_member_gets_its_assignment() -> None:
    group = Group("g")
    a = joined(group, "a")
    member = group.members[a]
    with pytest.raises(BrokerError) as fenced:
        consumer.check_epoch(beat(a, consumer.epoch_of(member) + 1), member, "g")
    assert fenced.value.reason == Reason.FENCED_MEMBER
    behind = consumer.answer(beat(a, consumer.epoch_of(member) - 1), member, joined=False)
    assert behind.assignment == ALL
    # A member that believes it owns more than it was given is corrected.
    assert consumer.answer(beat(a, consumer.epoch_of(member), owned=ALL | {("t", 9)}),
                           member, joined=False).assignment == ALL


def test_server_assignors_and_a_join_without_topics() -> None:
    group = Group("g")
    assert consumer.strategy_for("uniform", group) == "sticky"
    assert consumer.strategy_for("range", group) == "range"
    with pytest.raises(BrokerError) as unknown:
        consumer.strategy_for("mystery", group)
    assert unknown.value.metadata["assignor"] == "mystery"
    with pytest.raises(BrokerError) as no_topics:
        consumer.join_request(beat("m", 0), group)
    assert no_topics.value.reason == Reason.INVALID_REQUEST
