"""leader_lost: a broken connection to the leader's broker starts the election at once."""

from __future__ import annotations

from odradek.raft import Message, MessageType, Role
from tests.unit.raft_harness import Net


def _elected(leader: int, ids: list[int] | None = None) -> Net:
    net = Net(ids or [1, 2, 3])
    net.campaign(leader)
    assert net.leaders() == [leader]
    net.tick_all(2)  # every follower heard from the leader just now: in its lease
    net.sent.clear()
    return net


def _first_and_second(net: Net, lost: int) -> tuple[int, int]:
    """The order in which the voters left take their turn (rotated by the term)."""
    order = sorted(v for v in net.ids if v != lost)
    shift = net.nodes[order[0]].term % len(order)
    order = order[shift:] + order[:shift]
    return order[0], order[1]


def test_both_followers_lose_the_leader_and_one_is_elected_without_a_timeout() -> None:
    net = _elected(1)
    term = net.nodes[2].term
    net.isolate(1)
    first, second = _first_and_second(net, 1)
    # Both see the broken connection in the same instant; no tick passes.
    net.nodes[second].leader_lost(1)
    net.nodes[first].leader_lost(1)
    net.deliver()
    assert net.nodes[first].role == Role.LEADER
    assert net.nodes[first].term == term + 1  # one election: no split vote
    assert net.nodes[second].leader == first
    # one candidate: the other never asked for votes
    assert not [m for m in net.sent if m.type == MessageType.VOTE and m.from_id == second]


def test_a_voter_that_still_hears_the_leader_refuses_by_the_lease() -> None:
    net = _elected(1)
    term = net.nodes[1].term
    first, second = _first_and_second(net, 1)
    net.blocked = {(first, 1), (1, first)}  # one link broke; the leader is healthy
    net.nodes[first].leader_lost(1)
    net.deliver()
    assert net.nodes[first].role == Role.PRE_CANDIDATE  # no answer from the lease holder
    assert not [m for m in net.sent if m.type == MessageType.PRE_VOTE_RESP]
    assert net.leaders() == [1]
    assert all(n.term == term for n in net.nodes.values())
    assert net.nodes[second].leader == 1


def test_a_voter_that_lost_the_leader_grants_despite_the_lease() -> None:
    net = _elected(1)
    term = net.nodes[2].term
    first, second = _first_and_second(net, 1)
    voter = net.nodes[second]
    voter.leader_lost(1)  # its turn is later: it waits, but holds no lease any more
    assert voter.role == Role.FOLLOWER and voter.leader is None
    last, last_term = net.nodes[first].last_index, net.nodes[first].log.last_term()
    voter.step(Message(MessageType.PRE_VOTE, first, second, term + 1, index=last,
                       log_term=last_term))
    resp = [m for m in net.pump(second) if m.type == MessageType.PRE_VOTE_RESP]
    assert resp and not resp[0].reject


def test_the_second_in_turn_campaigns_after_the_stagger_when_the_first_cannot() -> None:
    net = _elected(1)
    term = net.nodes[2].term
    first, second = _first_and_second(net, 1)
    net.isolate(1)
    net.isolate(first)  # the first in turn cannot reach anyone: its requests are lost
    net.nodes[first].leader_lost(1)
    net.nodes[second].leader_lost(1)
    net.deliver()
    assert net.nodes[second].role == Role.FOLLOWER
    stagger = net.nodes[second].cfg.leader_lost_stagger_ticks
    for _ in range(stagger):
        net.tick(second)
    assert net.nodes[second].role == Role.PRE_CANDIDATE  # well before an election timeout
    assert net.nodes[second].term == term


def test_the_more_up_to_date_voter_does_not_wait_its_turn() -> None:
    net = _elected(1)
    first, second = _first_and_second(net, 1)
    # The last entry reaches only the second in turn before the leader dies.
    net.blocked = {(1, first)}
    net.nodes[1].propose(b"x")
    net.deliver()
    assert net.nodes[second].last_index > net.nodes[first].last_index
    net.isolate(1)
    net.nodes[second].leader_lost(1)
    net.nodes[first].leader_lost(1)  # goes first, is refused, and that starts the other
    net.deliver()
    assert net.nodes[second].role == Role.LEADER
    assert net.nodes[first].leader == second


def test_a_signal_about_another_broker_or_a_link_that_recovers_changes_nothing() -> None:
    net = _elected(1)
    term = net.nodes[1].term
    _, second = _first_and_second(net, 1)
    net.nodes[second].leader_lost(3 if second != 3 else 2)  # not its leader
    assert net.nodes[second].leader == 1
    net.blocked = {(second, 1), (1, second)}
    net.nodes[second].leader_lost(1)
    net.heal()
    net.tick_all(2)  # the leader's heartbeat arrives again before its turn came
    node = net.nodes[second]
    assert node.leader == 1 and node.role == Role.FOLLOWER
    assert node.randomized_timeout >= node.cfg.election_ticks  # a full timeout again
    net.tick_all(30)
    assert net.leaders() == [1] and all(n.term == term for n in net.nodes.values())


def test_a_leader_ignores_the_signal() -> None:
    net = _elected(1)
    net.nodes[1].leader_lost(2)
    net.nodes[1].leader_lost(1)
    assert net.leaders() == [1]


def test_a_first_turn_ignored_under_the_lease_is_taken_again_by_the_up_to_date_voter() -> None:
    net = _elected(1)
    first, second = _first_and_second(net, 1)
    net.blocked = {(1, second)}  # the last entry reaches only the first in turn
    net.nodes[1].propose(b"x")
    net.deliver()
    assert net.nodes[first].last_index > net.nodes[second].last_index
    net.isolate(1)
    net.nodes[first].leader_lost(1)  # the second still holds the lease: no answer
    net.deliver()
    assert net.nodes[first].role == Role.PRE_CANDIDATE
    net.nodes[second].leader_lost(1)
    stagger = net.nodes[second].cfg.leader_lost_stagger_ticks
    for _ in range(stagger):  # its turn: it asks, the first refuses and asks again
        net.tick(second)
    assert net.nodes[first].role == Role.LEADER
    assert net.nodes[second].leader == first
