"""Single-server membership changes: one at a time, effective when appended."""

from __future__ import annotations

import pytest

from odradek.raft import ConfigChangeType, MemoryStorage, ProposalDropped, Role
from tests.unit.raft_harness import Net, log_of

ADD, REMOVE = ConfigChangeType.ADD_VOTER, ConfigChangeType.REMOVE_VOTER


def test_add_a_voter_that_joins_with_an_empty_log() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    ld = net.nodes[1]
    for i in range(3):
        ld.propose(b"%d" % i, count=2)
    net.deliver()
    joiner = net.add(4, MemoryStorage())  # no configuration: it never campaigns alone
    assert not joiner.promotable()
    idx = ld.propose_config_change(ADD, 4)
    assert ld.config.voters == {1, 2, 3, 4}  # in effect as soon as appended
    with pytest.raises(ProposalDropped):
        ld.propose_config_change(ADD, 5)  # one change at a time
    net.deliver()
    net.tick_all(2)
    assert ld.commit_index >= idx
    assert joiner.config.voters == {1, 2, 3, 4} and joiner.promotable()
    assert log_of(net, 4) == log_of(net, 1)
    # with four voters the quorum is three: two nodes down stops commits
    net.isolate(3)
    net.blocked |= {(4, 1), (1, 4)}
    before = ld.commit_index
    ld.propose(b"stalled")
    net.deliver()
    assert ld.commit_index == before
    # the next change is allowed once the previous one is committed
    net.heal()
    net.tick_all(2)
    ld.propose_config_change(ADD, 5)


def test_remove_a_voter_shrinks_the_quorum() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    ld = net.nodes[1]
    net.deliver()
    ld.propose_config_change(REMOVE, 3)
    net.deliver()
    net.tick_all(1)
    assert ld.config.voters == {1, 2}
    assert 3 not in ld.progress
    net.isolate(3)
    ld.propose(b"x")
    net.deliver()
    assert ld.commit_index == ld.last_index


def test_config_change_waits_for_an_entry_of_the_leaders_term() -> None:
    net = Net([1, 2, 3])
    net.filter = lambda m: m.to_id != 1 or m.type.name.endswith("VOTE_RESP")
    net.campaign(1)
    ld = net.nodes[1]
    assert ld.role == Role.LEADER
    with pytest.raises(ProposalDropped):
        ld.propose_config_change(REMOVE, 3)


def test_removed_leader_steps_down_after_the_change_commits() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    ld = net.nodes[1]
    net.deliver()
    ld.propose_config_change(REMOVE, 1)
    assert ld.role == Role.LEADER  # still leads while the change is uncommitted
    net.deliver()
    assert ld.role == Role.FOLLOWER and not ld.promotable()
    net.tick_all(40)
    leaders = net.leaders()
    assert len(leaders) == 1 and leaders[0] in (2, 3)
    assert net.nodes[leaders[0]].config.voters == {2, 3}


def test_membership_survives_a_restart() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    net.deliver()
    net.nodes[1].propose_config_change(REMOVE, 3)
    net.deliver()
    again = net.restart(2)
    assert again.config.voters == {1, 2}
