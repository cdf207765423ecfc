"""DeleteRecords through the partition's Raft log: three replicas in one process (the
real core, logs on disk and host), each moving its log start when the entry commits."""

from __future__ import annotations

from pathlib import Path

import pytest

from odradek.broker.errors import BrokerError
from odradek.broker.reasons import Reason
from odradek.records import encode_batch
from tests.integration.test_replication_inprocess import (
    IDS,
    Net,
    Replica,
    leader_of,
    wait_until,
)


async def _fill(leader: Replica, batches: int) -> None:
    for n in range(batches):
        batch = encode_batch([(n, None, b"v%d-%d-" % (n, i) + b"x" * 100) for i in range(5)])
        await leader.partition.append(batch, timeout_s=10)


def _starts(replicas: list[Replica]) -> list[int]:
    return [r.log.log_start_offset for r in replicas]


@pytest.mark.timeout(90)
async def test_every_replica_moves_its_start_and_keeps_it(tmp_path: Path) -> None:
    net = Net()
    replicas = [Replica(i, tmp_path, net) for i in IDS]
    try:
        leader = await leader_of(replicas)
        await _fill(leader, 20)
        # A follower down meanwhile learns the new start when it catches up.
        away = next(r for r in replicas if r is not leader)
        await away.crash()
        assert await leader.partition.delete_records(37) == 37
        live = [r for r in replicas if r is not away]
        await wait_until(lambda: _starts(live) == [37, 37])
        for r in live:
            segs = r.log.segments
            assert segs[0].base_offset <= 37 < segs[1].base_offset  # only whole ones went
        with pytest.raises(BrokerError) as caught:
            leader.partition.read(36, 1 << 20)
        assert caught.value.reason == Reason.OFFSET_OUT_OF_RANGE
        assert "valid offsets are 37 to" in caught.value.message
        away.start()
        await wait_until(lambda: away.log.log_start_offset == 37
                         and away.log.log_end_offset == leader.log.log_end_offset)
        # The leader killed: its successor keeps the start, and so does it after a restart.
        await leader.crash()
        survivors = [r for r in replicas if r is not leader]
        successor = await leader_of(survivors)
        assert successor.log.log_start_offset == 37
        await _fill(successor, 2)
        leader.start()
        await wait_until(lambda: leader.log.log_end_offset == successor.log.log_end_offset)
        assert _starts(replicas) == [37, 37, 37]
    finally:
        for r in replicas:
            if r.id not in net.down:
                await r.crash()


@pytest.mark.timeout(60)
async def test_bounds_and_the_high_watermark(tmp_path: Path) -> None:
    net = Net()
    replicas = [Replica(i, tmp_path, net) for i in IDS]
    try:
        leader = await leader_of(replicas)
        await _fill(leader, 4)
        hw = leader.partition.high_watermark
        with pytest.raises(BrokerError) as caught:
            await leader.partition.delete_records(hw + 1)
        assert caught.value.reason == Reason.OFFSET_OUT_OF_RANGE
        assert f"the high watermark {hw}" in caught.value.message
        follower = next(r for r in replicas if r is not leader)
        with pytest.raises(BrokerError) as caught:
            await follower.partition.delete_records(3)
        assert caught.value.reason == Reason.NOT_LEADER
        assert await leader.partition.delete_records(5) == 5
        assert await leader.partition.delete_records(2) == 5  # below the start: unchanged
        # -1: everything committed (the DeleteRecords entries take offsets too).
        hw = leader.partition.high_watermark
        assert await leader.partition.delete_records(-1) == hw
        await wait_until(lambda: _starts(replicas) == [hw] * 3)
        with pytest.raises(BrokerError, match=f"valid offsets are {hw} to"):
            leader.partition.read(hw - 1, 1 << 20)
    finally:
        for r in replicas:
            if r.id not in net.down:
                await r.crash()
