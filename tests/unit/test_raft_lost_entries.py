"""A replica that lost entries it had acknowledged (recovery cut a corrupt batch, or a
power loss took unsynced writes): the leader learns it and sends them again, and until
the replica holds its old commit index again it neither votes nor campaigns. Found by
tests/chaos (a bit flip in a follower's segment): before, the follower raised "commit
beyond the log end" on every heartbeat and was never repaired."""

from __future__ import annotations

import random

from odradek.raft import HardState, MemoryStorage, RaftConfig, RaftNode, Role
from tests.unit.raft_harness import Net, log_of


def lose_entries(net: Net, i: int, keep_to: int) -> None:
    """Restarts node i with its log cut after offset keep_to, as recovery would leave it."""
    old = net.storages[i]
    hs = old.initial_state()
    st = MemoryStorage(net.ids)
    st.append(old.entries(old.first_index(), keep_to + 1, 1 << 30))
    st.set_hard_state(HardState(hs.term, hs.vote, min(hs.commit, keep_to)))
    net.storages[i] = st
    net.nodes[i] = RaftNode(RaftConfig(i, lost_commit=hs.commit), st, random.Random(i))


def test_a_follower_that_lost_acknowledged_entries_is_sent_them_again() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    for n in range(10):
        net.nodes[1].propose(b"v%d" % n)
    net.deliver()
    assert net.nodes[3].commit_index == 10
    lose_entries(net, 3, 4)
    net.tick(1, 3)  # heartbeats: node 3 answers that its log ends at 4
    net.nodes[1].propose(b"after")
    net.deliver()
    assert log_of(net, 3) == log_of(net, 1)
    assert net.nodes[3].commit_index == net.nodes[1].commit_index == 11


def test_a_node_that_lost_committed_entries_does_not_vote_until_repaired() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    for n in range(4):
        net.nodes[1].propose(b"v%d" % n)
    net.deliver()
    net.blocked |= {(1, 2), (2, 1)}
    for n in range(5):
        net.nodes[1].propose(b"w%d" % n)  # committed on 1 and 3 only
    net.deliver()
    assert net.nodes[1].commit_index == 9 and net.nodes[2].last_index == 4
    lose_entries(net, 3, 2)  # now shorter than node 2's log
    net.isolate(1)
    net.campaign(2)
    net.campaign(3)
    net.tick_all(30)
    # Node 2 lacks 5..9, which were committed: it must not win with node 3's vote.
    assert net.leaders() == []
    net.heal()
    net.tick_all(30)
    assert net.leaders() == [1]
    assert log_of(net, 3) == log_of(net, 1)
    assert net.nodes[2].commit_index >= 9  # the entries survived
    assert net.nodes[3].role == Role.FOLLOWER


def test_a_node_that_lost_entries_asks_a_quiet_leader_for_them() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    for n in range(10):
        net.nodes[1].propose(b"v%d" % n)
    net.deliver()
    lose_entries(net, 3, 4)
    # The leader's group is quiet (quiesced by the host): it sends no heartbeat that the
    # repairing node could answer, so only the node itself can start the repair.
    net.tick(3, 20)
    net.deliver()
    assert log_of(net, 3) == log_of(net, 1)
    assert net.nodes[3].commit_index == net.nodes[1].commit_index == 10
    assert net.leaders() == [1]
