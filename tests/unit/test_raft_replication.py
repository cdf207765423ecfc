"""Log replication: offsets as ranges, pipelining, conflicts, fast backtracking, and
committing only entries of the current term (Figure 8 of the Raft paper)."""

from __future__ import annotations

import pytest

from odradek.raft import (
    Entry,
    EntryKind,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    NotLeader,
    Role,
)
from tests.unit.raft_harness import Net, log_of, storage_with


def E(index: int, term: int, count: int = 1) -> Entry:  # noqa: N802
    return Entry(index, count, term, f"{index}/{term}".encode())


def test_entries_cover_offset_ranges_and_commit_is_a_last_offset() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    ld = net.nodes[1]
    a = ld.propose(b"a", count=10)
    b = ld.propose(b"b", count=1)
    c = ld.propose(b"c", count=5)
    assert (a, b, c) == (1, 11, 12)
    net.deliver()
    for n in net.nodes.values():
        assert n.commit_index == 16 and n.high_watermark == 17
        assert n.last_index == 16
    assert log_of(net, 2) == [(0, 1, 1), (1, 10, 1), (11, 1, 1), (12, 5, 1)]
    kinds = [e.kind for e in net.applied[3]]
    assert kinds == [EntryKind.NOOP, EntryKind.NORMAL, EntryKind.NORMAL, EntryKind.NORMAL]


def test_propose_on_a_follower_raises_not_leader_with_hint() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    with pytest.raises(NotLeader) as ei:
        net.nodes[2].propose(b"x")
    assert ei.value.leader_hint == 1


def test_leader_counts_its_own_entries_only_once_persisted() -> None:
    net = Net([1])
    net.campaign(1)
    ld = net.nodes[1]
    ld.propose(b"x")
    rd = ld.ready()
    assert rd.entries_to_persist and ld.commit_index == 0
    net.storages[1].append(rd.entries_to_persist)
    ld.advance(rd)  # now durable: the single voter is a quorum
    assert ld.commit_index == 1
    assert ld.has_ready() and ld.ready().committed_entries[-1].data == b"x"


def test_appends_are_pipelined_up_to_the_inflight_window() -> None:
    net = Net([1, 2, 3], max_inflight=3, max_batch_bytes=40)
    net.campaign(1)
    ld = net.nodes[1]
    net.blocked = {(2, 1), (3, 1)}  # acknowledgements are lost: the window fills up
    for i in range(10):
        ld.propose(b"%02d" % i)
        net.deliver()
    appends_to_2 = [m for m in net.sent if m.type == MessageType.APPEND and m.to_id == 2]
    # several appends went out without waiting for answers, but no more than the window
    with_entries = [m for m in appends_to_2 if m.entries and m.entries[0].index > 0]
    assert len(with_entries) == 3
    assert ld.progress[2].is_paused()
    net.heal()
    net.tick_all(3)
    assert all(n.commit_index == ld.last_index for n in net.nodes.values())


def test_heartbeats_carry_commit_bounded_by_match() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    ld = net.nodes[1]
    net.blocked = {(1, 3)}
    ld.propose(b"x")
    net.deliver()
    assert ld.commit_index == 1
    net.sent.clear()
    net.tick(1)
    hb = {m.to_id: m.commit for m in net.sent if m.type == MessageType.HEARTBEAT}
    assert hb[2] == 1
    assert 3 not in hb or hb[3] <= ld.progress[3].match


def test_log_conflicts_are_resolved_with_fast_backtracking() -> None:
    # leader-to-be (term 3) vs. a follower with a long divergent tail of term 2
    s1 = storage_with([1, 2, 3], [E(0, 1), E(1, 1, 3), E(4, 3), E(5, 3)], term=3)
    tail = [E(1, 2, 2), E(3, 2)] + [E(4 + i, 2) for i in range(40)]
    s2 = storage_with([1, 2, 3], [E(0, 1)] + tail, term=2)
    s3 = storage_with([1, 2, 3], [E(0, 1)], term=1)
    for s in (s1, s2, s3):
        s.set_hard_state(HardState(s.initial_state().term, None, 0))
    net = Net([1, 2, 3], storages={1: s1, 2: s2, 3: s3})
    net.campaign(1)
    assert net.leaders() == [1]
    leader_log = log_of(net, 1)
    assert log_of(net, 2) == leader_log and log_of(net, 3) == leader_log
    assert leader_log[-1] == (6, 1, 4)  # the no-op of term 4
    rejects = [m for m in net.sent if m.type == MessageType.APPEND_RESP and m.reject]
    assert len([m for m in rejects if m.from_id == 2]) <= 2
    assert [n.commit_index for n in net.nodes.values()] == [6, 6, 6]


def test_follower_truncation_is_persisted_and_stale_config_rolled_back() -> None:
    s1 = storage_with([1, 2, 3], [E(0, 1), E(1, 3)], term=3)
    cfg_entry = Entry(1, 1, 2, b'{"voters": [1, 2, 3, 4]}', EntryKind.CONFIG)
    s2 = storage_with([1, 2, 3], [E(0, 1), cfg_entry], term=2)
    for s in (s1, s2):
        s.set_hard_state(HardState(s.initial_state().term, None, 0))
    net = Net([1, 2, 3], storages={1: s1, 2: s2})
    assert net.nodes[2].config.voters == {1, 2, 3, 4}  # takes effect as appended
    net.campaign(1)
    assert net.leaders() == [1]
    assert net.nodes[2].config.voters == {1, 2, 3}  # the truncated change is undone
    assert net.storages[2].term(1) == 3


def test_commit_only_entries_of_the_current_term_figure_8() -> None:
    # offset 1 (term 2) is on nodes 1 and 2, a majority, but was never committed
    s1 = storage_with([1, 2, 3], [E(0, 1), E(1, 2)], term=2)
    s2 = storage_with([1, 2, 3], [E(0, 1), E(1, 2)], term=2)
    s3 = storage_with([1, 2, 3], [E(0, 1)], term=2)
    for s in (s1, s2, s3):
        s.set_hard_state(HardState(2, None, 0))
    net = Net([1, 2, 3], storages={1: s1, 2: s2, 3: s3})
    # elect node 1 in term 3 but let no append through
    net.filter = lambda m: m.type not in (MessageType.APPEND, MessageType.HEARTBEAT)
    net.campaign(1)
    ld = net.nodes[1]
    assert ld.role == Role.LEADER and ld.term == 3
    assert log_of(net, 1)[-1] == (2, 1, 3)  # the no-op
    # node 2 acknowledges offset 1: a majority holds it, yet it is of term 2
    ld.step(Message(MessageType.APPEND_RESP, 2, 1, 3, index=1))
    assert ld.commit_index == 0
    # once an entry of term 3 is on a majority, everything up to it commits
    ld.step(Message(MessageType.APPEND_RESP, 2, 1, 3, index=2))
    assert ld.commit_index == 2


def test_stale_leader_steps_down_on_higher_term_answer() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    net.isolate(1)
    net.tick_all(40)
    new = [i for i in net.leaders() if i != 1]
    assert len(new) == 1
    net.heal()
    net.tick_all(3)
    assert net.leaders() == new
    assert net.nodes[1].role == Role.FOLLOWER


def test_restart_keeps_durable_commit_and_reapplies() -> None:
    net = Net([1, 2, 3])
    net.campaign(1)
    net.nodes[1].propose(b"x")
    net.deliver()
    net.tick_all(2)
    node = net.restart(2)
    assert node.commit_index == 1
    net.applied[2] = []
    net.deliver()
    assert [e.data for e in net.applied[2]] == [b"", b"x"]


def test_message_dict_round_trip() -> None:
    from odradek.raft import ConfigState, Snapshot, SnapshotMeta

    m = Message(
        MessageType.APPEND, 1, 2, 5, prev_index=3, prev_term=4,
        entries=[Entry(4, 2, 5, b"ab", EntryKind.NORMAL)], commit=3,
    )
    assert Message.from_dict(m.to_dict()) == m
    s = Message(
        MessageType.SNAPSHOT, 1, 2, 5,
        snapshot=Snapshot(SnapshotMeta(9, 4, ConfigState(frozenset({1, 2}))), b"state"),
    )
    assert Message.from_dict(s.to_dict()) == s


def test_memory_storage_rejects_gaps_and_split_entries() -> None:
    st = MemoryStorage([1])
    st.append([E(0, 1, 3)])
    with pytest.raises(ValueError):
        st.append([E(5, 1)])
    with pytest.raises(ValueError):
        st.append([E(1, 1)])
    assert st.term(2) == 1 and st.term(3) is None and st.term(-1) == 0
