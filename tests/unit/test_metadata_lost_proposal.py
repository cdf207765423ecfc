"""A metadata command proposed here can be lost when the controller changes: the new
controller's log may be shorter, and nothing may ever fill the lost offset. A proposer
must then learn of the loss from what the log committed (an entry of a later term at or
below its offset), not wait out its whole timeout (a CreateTopic failed after 15 s with
NOT_CONTROLLER; leader reports waited 60 s)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from odradek.broker.cluster import ClusterNode, ClusterSettings
from odradek.broker.replication.host import RaftHost
from odradek.raft import Entry, EntryKind, Ready, Role
from odradek.raft.types import SoftState


def _node(tmp_path: Path) -> ClusterNode:
    settings = ClusterSettings(broker_id=0, host="127.0.0.1", port=1, data_dir=tmp_path,
                               voters={0: "127.0.0.1:1"})
    return ClusterNode(settings, RaftHost(0, send=lambda *_: None))


def _commit(node: ClusterNode, index: int, term: int) -> None:
    entry = Entry(index=index, count=1, term=term, kind=EntryKind.NOOP)
    node.apply_committed(Ready(None, [], [], [entry], None, SoftState(0, Role.FOLLOWER),
                               index))


async def _settles(node: ClusterNode, offset: int, term: int | None,
                   commit: tuple[int, int]) -> bool:
    waiter = asyncio.ensure_future(node.wait_applied(offset, 5.0, term))
    await asyncio.sleep(0)
    _commit(node, *commit)
    # Settled at once or not at all: a second is only the bound on a loaded machine.
    await asyncio.wait([waiter], timeout=1.0)
    done = waiter.done() and waiter.exception() is None
    waiter.cancel()
    return done


async def test_a_later_term_committed_below_the_offset_settles_a_local_proposal(
        tmp_path: Path) -> None:
    # Proposed at offset 7 in term 2; the next controller (term 3) committed its no-op
    # at 5: offset 7 of term 2 can never commit.
    assert await _settles(_node(tmp_path), 7, 2, (5, 3))


async def test_a_commit_at_the_offset_settles_a_local_proposal(tmp_path: Path) -> None:
    assert await _settles(_node(tmp_path), 7, 2, (7, 3))


async def test_the_same_term_below_the_offset_still_waits(tmp_path: Path) -> None:
    # The proposal's own leader committed up to 5: offset 7 may still commit.
    assert not await _settles(_node(tmp_path), 7, 2, (5, 2))


async def test_a_remote_proposal_waits_for_the_image(tmp_path: Path) -> None:
    # A remote controller answered once it applied the command: only the image counts.
    assert not await _settles(_node(tmp_path), 7, None, (5, 3))
