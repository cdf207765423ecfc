"""Elections, PreVote, CheckQuorum and the leader lease."""

from __future__ import annotations

from odradek.raft import MemoryStorage, Message, MessageType, RaftConfig, RaftNode, Role
from tests.unit.raft_harness import Net


def test_single_node_elects_itself_and_commits() -> None:
    net = Net([1])
    net.campaign(1)
    node = net.nodes[1]
    assert node.role == Role.LEADER and node.term == 1
    idx = node.propose(b"x", count=3)
    net.deliver()
    assert idx == 1  # offset 0 is the leader's no-op
    assert node.commit_index == 3 and node.high_watermark == 4
    assert [e.data for e in net.applied[1]] == [b"", b"x"]


def test_three_nodes_elect_exactly_one_leader() -> None:
    net = Net([1, 2, 3], seed=7)
    for _ in range(40):
        net.tick_all()
        if net.leaders():
            break
    assert len(net.leaders()) == 1
    lead = net.leaders()[0]
    terms = {n.term for n in net.nodes.values()}
    assert len(terms) == 1
    for n in net.nodes.values():
        assert n.leader == lead
    # the vote and the term are persisted in HardState
    for i, st in net.storages.items():
        assert st.initial_state().term == net.nodes[i].term
    assert net.storages[lead].initial_state().vote == lead


def test_randomized_timeouts_come_from_the_injected_rng() -> None:
    import random

    a = [RaftNode(RaftConfig(1), MemoryStorage([1, 2, 3]), random.Random(5)) for _ in range(2)]
    assert a[0].randomized_timeout == a[1].randomized_timeout
    assert 10 <= a[0].randomized_timeout < 20


def test_prevote_keeps_a_partitioned_node_from_disrupting() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    assert net.leaders() == [1]
    term = net.nodes[1].term
    net.isolate(3)
    for _ in range(100):
        net.tick_all()
    # node 3 pre-campaigned over and over, but never raised its term
    assert net.nodes[3].term == term
    assert net.nodes[3].role in (Role.PRE_CANDIDATE, Role.FOLLOWER)
    net.heal()
    net.tick_all(30)
    assert net.leaders() == [1]
    assert all(n.term == term for n in net.nodes.values())


def test_without_prevote_an_isolated_node_raises_its_term() -> None:
    net = Net([1, 2, 3], pre_vote=False)
    net.campaign(1)
    term = net.nodes[1].term
    net.isolate(3)
    for _ in range(60):
        net.tick_all()
    assert net.nodes[3].term > term


def test_check_quorum_leader_steps_down_without_contact() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    assert net.leaders() == [1]
    net.isolate(1)
    # activity is checked once per election timeout: the leader steps down at the first
    # check that finds a whole timeout without quorum contact (at most two timeouts)
    for _ in range(2 * 10):
        net.tick(1)
    assert net.nodes[1].role == Role.FOLLOWER
    assert net.nodes[1].leader is None


def test_leader_keeps_leadership_with_quorum_contact() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    net.blocked = {(2, 3), (3, 2)}  # 3 can only talk to the leader
    net.tick_all(50)
    assert net.leaders() == [1]


def test_leader_lease_followers_ignore_votes_while_leader_is_live() -> None:
    net = Net([1, 2, 3], pre_vote=False)
    net.campaign(1)
    term = net.nodes[1].term
    net.tick_all(2)  # followers heard from the leader just now
    follower = net.nodes[2]
    vote = Message(MessageType.VOTE, 3, 2, term + 5, index=100, log_term=term)
    follower.step(vote)
    assert follower.term == term  # ignored: no term change, no answer
    assert not [m for m in net.pump(2) if m.type == MessageType.VOTE_RESP]
    # a forced vote (leadership transfer) is not ignored
    follower.step(Message(MessageType.VOTE, 3, 2, term + 5, index=100, log_term=term, force=True))
    assert follower.term == term + 5
    resp = [m for m in net.pump(2) if m.type == MessageType.VOTE_RESP]
    assert resp and not resp[0].reject


def test_vote_refused_to_a_candidate_with_a_shorter_log() -> None:
    net = Net([1, 2, 3], check_quorum=False)
    net.campaign(1)
    net.nodes[1].propose(b"a")
    net.deliver()
    node = net.nodes[2]
    last = node.last_index
    node.step(Message(MessageType.VOTE, 3, 2, node.term + 1, index=last - 1, log_term=node.term))
    resp = [m for m in net.pump(2) if m.type == MessageType.VOTE_RESP]
    assert resp[0].reject
    assert node.vote is None


def test_candidate_restart_remembers_its_vote() -> None:
    net = Net([1, 2, 3])
    net.isolate(1)
    net.campaign(1)  # pre-vote fails: nothing changes
    assert net.nodes[1].term == 0
    net.heal()
    net.campaign(2)
    assert net.leaders() == [2]
    voter = 1 if net.storages[1].initial_state().vote == 2 else 3
    again = net.restart(voter)
    assert again.vote == 2 and again.term == net.nodes[2].term
