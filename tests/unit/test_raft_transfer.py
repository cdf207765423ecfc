"""Leadership transfer (TimeoutNow)."""

from __future__ import annotations

import pytest

from odradek.raft import MessageType, NotLeader, ProposalDropped, Role
from tests.unit.raft_harness import Net


def test_transfer_to_an_up_to_date_follower() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    term = net.nodes[1].term
    net.nodes[1].transfer_leadership(3)
    net.deliver()
    assert net.leaders() == [3]
    assert net.nodes[3].term == term + 1
    assert net.nodes[1].role == Role.FOLLOWER and net.nodes[1].leader == 3
    assert net.count(MessageType.TIMEOUT_NOW, to=3) == 1
    # the new leader skipped the pre-vote: its vote request was forced past the lease
    assert net.count(MessageType.PRE_VOTE) == 2  # only from node 1's own first election


def test_transfer_to_a_lagging_follower_catches_it_up_first() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    ld = net.nodes[1]
    net.blocked = {(1, 3)}
    for i in range(5):
        ld.propose(b"%d" % i)
    net.deliver()
    assert net.nodes[3].last_index < ld.last_index
    ld.transfer_leadership(3)
    with pytest.raises(ProposalDropped):
        ld.propose(b"during transfer")
    assert net.count(MessageType.TIMEOUT_NOW) == 0
    net.heal()
    net.tick_all(2)
    assert net.leaders() == [3]
    assert net.nodes[3].commit_index >= 5


def test_transfer_times_out_when_the_target_is_unreachable() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    ld = net.nodes[1]
    net.isolate(3)
    ld.propose(b"x")
    net.deliver()
    ld.transfer_leadership(3)
    assert ld.lead_transferee == 3
    net.tick_all(10)
    assert ld.lead_transferee is None and ld.role == Role.LEADER
    assert ld.propose(b"y") > 0


def test_transfer_needs_a_leader_and_a_voter() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    with pytest.raises(NotLeader):
        net.nodes[2].transfer_leadership(3)
    with pytest.raises(ValueError):
        net.nodes[1].transfer_leadership(9)
