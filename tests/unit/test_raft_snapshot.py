"""InstallSnapshot for a follower that needs entries below the leader's first index."""

from __future__ import annotations

from odradek.raft import ConfigChangeType, MemoryStorage, MessageType, ProgressState
from tests.unit.raft_harness import Net, log_of


def test_lagging_follower_gets_a_snapshot_then_entries() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    ld = net.nodes[1]
    net.isolate(3)
    for i in range(20):
        ld.propose(b"v%d" % i, count=3)
    net.deliver()
    commit = ld.commit_index
    assert commit == 60
    # both live nodes compact their logs up to what they applied
    for i in (1, 2):
        net.storages[i].compact(commit, b"state@%d" % commit)
    assert net.storages[1].first_index() == commit + 1
    ld.propose(b"after", count=2)
    net.deliver()
    net.heal()
    snaps: list[int] = []
    node3 = net.nodes[3]
    net.tick(1)  # heartbeat -> probe -> reject -> the leader sends the snapshot
    for m in net.sent:
        if m.type == MessageType.SNAPSHOT and m.snapshot is not None:
            snaps.append(m.snapshot.meta.index)
    assert snaps == [commit]
    net.tick_all(2)
    st3 = net.storages[3]
    assert st3.snapshot_meta().index == commit
    assert st3.snapshot().data == b"state@60"
    assert st3.snapshot_meta().config.voters == {1, 2, 3}
    assert node3.commit_index == ld.commit_index == 62
    assert log_of(net, 3) == log_of(net, 1)
    assert ld.progress[3].state == ProgressState.REPLICATE


def test_joining_node_starts_from_the_snapshot_in_ready() -> None:
    net = Net([1, 2])
    net.campaign(1)
    ld = net.nodes[1]
    for i in range(5):
        ld.propose(b"x%d" % i)
    net.deliver()
    net.tick_all(1)
    for i in (1, 2):
        net.storages[i].compact(ld.commit_index, b"S")
    joiner = net.add(3, MemoryStorage())
    ld.propose_config_change(ConfigChangeType.ADD_VOTER, 3)
    net.deliver()
    net.tick_all(2)
    snaps = net.snapshots.get(3, [])
    assert len(snaps) == 1 and snaps[0].data == b"S" and snaps[0].meta.index == 5
    assert snaps[0].meta.config.voters == {1, 2}  # the change came after the snapshot
    assert joiner.config.voters == {1, 2, 3}
    assert joiner.commit_index == ld.commit_index
    # entries after the snapshot were applied; the ones before came with it
    assert [e.index for e in net.applied[3]] == [6]
