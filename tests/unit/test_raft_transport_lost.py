"""RaftTransport's peer_lost: a broken stream whose peer then refuses connections."""

from __future__ import annotations

import asyncio

from tests.unit.raft_transport_util import Cluster, eventually


async def _pair(c: Cluster) -> tuple[list[int], list[int]]:
    """Brokers 1 (the dialer) and 2, connected; what each reports lost."""
    lost1: list[int] = []
    lost2: list[int] = []
    a = await c.add(1, peer_lost=lost1.append)
    b = await c.add(2, peer_lost=lost2.append)
    a.transport.add_peer(2)
    await eventually(lambda: a.transport.connected(2) and b.transport.connected(1))
    return lost1, lost2


async def test_the_dialer_reports_a_peer_whose_server_is_gone() -> None:
    async with Cluster() as c:
        lost1, _ = await _pair(c)
        await c.brokers[1].stop_server()  # its port now refuses, as after kill -9
        await eventually(lambda: lost1 == [2])


async def test_the_served_side_reports_a_dialer_whose_server_is_gone() -> None:
    async with Cluster() as c:
        _, lost2 = await _pair(c)
        # Broker 1's process goes away: its listener closes and so does its stream.
        await c.brokers[0].stop_server()
        await c.brokers[0].transport.stop()
        await eventually(lambda: lost2 == [1])


async def test_a_peer_that_only_restarts_its_transport_is_not_reported() -> None:
    async with Cluster() as c:
        _, lost2 = await _pair(c)
        a = c.brokers[0]
        await a.transport.stop()  # the stream ends; broker 1's listener still accepts
        await eventually(lambda: not c.brokers[1].transport.connected(1))
        probes = c.brokers[1].transport._probes
        await eventually(lambda: not probes)
        await asyncio.sleep(0)
        assert lost2 == []
