"""A CreateTopic of many partitions opens its replicas' files without holding the event
loop: in worker threads (the broker), or a bounded number per pass of the loop (no
workers). Opened all at once on the loop, 1,000 replicas held it for seconds and the
broker's Raft heartbeats and votes waited behind them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from odradek.broker.cluster import ClusterNode, ClusterSettings
from odradek.broker.metadata.commands import CreateTopic, DeleteTopic
from odradek.broker.metadata.image import apply
from odradek.broker.names import partition_group
from odradek.broker.replica_files import JOB_SIZE
from odradek.broker.replication.host import RaftHost, ThreadSyncer

PARTITIONS = JOB_SIZE * 3 + 5


def _node(tmp_path: Path, workers: ThreadSyncer | None = None) -> ClusterNode:
    settings = ClusterSettings(broker_id=0, host="127.0.0.1", port=1, data_dir=tmp_path,
                               voters={0: "127.0.0.1:1"})
    return ClusterNode(settings, RaftHost(0, send=lambda *_: None), open_workers=workers)


def _create(node: ClusterNode, offset: int, partitions: int = PARTITIONS) -> None:
    command = CreateTopic("wide", f"id-{offset}", tuple((0,) for _ in range(partitions)))
    node.image = apply(node.image, offset, command)
    node.reconcile()


async def _while_opening(node: ClusterNode) -> list[int]:
    """How many replicas were registered each time the loop ran something else."""
    seen: list[int] = []
    while node.opening:
        seen.append(len(node.partitions))
        await asyncio.sleep(0)
    return seen


async def test_inline_opens_in_passes_and_the_loop_runs_between_them(tmp_path: Path) -> None:
    node = _node(tmp_path)
    try:
        _create(node, 1)
        assert len(node.partitions) == JOB_SIZE
        assert node.opening
        seen = await asyncio.wait_for(_while_opening(node), timeout=30)
        assert len(node.partitions) == PARTITIONS
        assert sorted(index for _, index in node.partitions) == list(range(PARTITIONS))
        # Other work ran between the passes, not only after the last one.
        assert any(0 < count < PARTITIONS for count in seen)
        node.reconcile()  # nothing new to open: nothing scheduled
        assert not node.opening
    finally:
        await node.stop()


async def test_workers_open_the_files_and_the_loop_registers_them(tmp_path: Path) -> None:
    workers = ThreadSyncer(2, "test-open")
    node = _node(tmp_path, workers)
    try:
        _create(node, 1)
        assert not node.partitions  # nothing opened on the loop
        assert node.opening
        await asyncio.wait_for(_while_opening(node), timeout=30)
        assert sorted(index for _, index in node.partitions) == list(range(PARTITIONS))
        assert (tmp_path / partition_group("wide", 0) / "topic-id").read_text() == "id-1"
    finally:
        await node.stop()
        workers.close()


async def test_a_topic_deleted_while_its_files_open_is_closed_and_removed(
        tmp_path: Path) -> None:
    workers = ThreadSyncer(2, "test-open")
    node = _node(tmp_path, workers)
    try:
        _create(node, 1)
        node.image = apply(node.image, 2, DeleteTopic("wide"))
        node.reconcile()
        assert node.opening
        await asyncio.wait_for(_while_opening(node), timeout=30)
        assert not node.partitions
        assert not (tmp_path / partition_group("wide", 0)).exists()
        # Created again under a new id: opened afresh, not the old files.
        _create(node, 3, partitions=2)
        await asyncio.wait_for(_while_opening(node), timeout=30)
        assert len(node.partitions) == 2
        assert (tmp_path / partition_group("wide", 0) / "topic-id").read_text() == "id-3"
    finally:
        await node.stop()
        workers.close()


async def test_a_stop_while_files_open_closes_them_unused(tmp_path: Path) -> None:
    workers = ThreadSyncer(1, "test-open")
    node = _node(tmp_path, workers)
    _create(node, 1)
    await node.stop()
    workers.close()
    assert not node.opening and not node.partitions
    assert not _open_files_under(tmp_path)


def _open_files_under(directory: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    targets = []
    for fd in fds.iterdir():
        try:
            targets.append(str(fd.readlink()))
        except OSError:
            continue  # closed meanwhile (the listing's own fd)
    return [t for t in targets if t.startswith(str(directory))]


async def test_a_replica_whose_files_fail_to_open_is_tried_again(tmp_path: Path) -> None:
    workers = ThreadSyncer(1, "test-open")
    node = _node(tmp_path, workers)
    blocker = tmp_path / partition_group("wide", 1)
    blocker.write_text("a file where the partition's directory goes")
    try:
        _create(node, 1, partitions=2)
        assert node.opener is not None

        async def until(condition: Callable[[], bool]) -> None:
            while not condition():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(until(lambda: ("wide", 1) in node.opener.held), timeout=30)
        assert node.opening  # not SERVING yet
        await asyncio.wait_for(until(lambda: ("wide", 0) in node.partitions), timeout=30)
        blocker.unlink()
        await asyncio.wait_for(until(lambda: len(node.partitions) == 2), timeout=30)
        await asyncio.wait_for(_while_opening(node), timeout=30)
    finally:
        await node.stop()
        workers.close()
