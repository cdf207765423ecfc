"""RaftTransport over real grpc.aio servers: one stream per pair, coalescing, reconnection."""

from __future__ import annotations

import asyncio

from odradek.raft.types import Message
from tests.unit.raft_transport_util import Cluster, eventually, msg


def _traffic(src: int, dst: int, groups: int, per_group: int) -> list[tuple[str, Message]]:
    return [
        (f"orders-{g}", msg(src, dst, 100 * g + i, data=bytes([g, i, 0, 255]) * (i + 1)))
        for g in range(groups)
        for i in range(per_group)
    ] + [("__meta", msg(src, dst, 7))]


async def test_two_brokers_both_directions_over_one_stream() -> None:
    async with Cluster() as c:
        b1, b2 = await c.add(1), await c.add(2)
        b1.transport.add_peer(2)
        await eventually(lambda: b1.transport.connected(2) and b2.transport.connected(1))

        up, down = _traffic(1, 2, 5, 4), _traffic(2, 1, 5, 4)
        for g, m in up:
            b1.transport.send(2, g, m)
        for g, m in down:
            b2.transport.send(1, g, m)
        await eventually(lambda: len(b2.received) == len(up) and len(b1.received) == len(down))
        assert b2.received == up
        assert b1.received == down

        # A second round, sent across several loop iterations, still rides the same stream.
        for g, m in up:
            b1.transport.send(2, g, m)
            b2.transport.send(1, g, m)
            await asyncio.sleep(0)
        n = 2 * len(up)
        await eventually(lambda: len(b2.received) == n and len(b1.received) == n)

        assert b2.transport.servicer().accepted == {1: 1}
        assert b1.transport.servicer().accepted == {}
        s12, s21 = b1.transport.stats()[2], b2.transport.stats()[1]
        assert s12.streams == s21.streams == 1
        assert s12.sent_messages == s21.received_messages == 2 * len(up)
        assert s21.sent_messages == s12.received_messages == len(down) + len(up)
        assert s12.dropped_messages == s21.dropped_messages == 0


async def test_three_brokers_one_stream_per_pair() -> None:
    async with Cluster() as c:
        bs = {i: await c.add(i) for i in (1, 2, 3)}
        for b in bs.values():
            for other in bs:
                if other != b.id:
                    b.transport.add_peer(other)
        pairs = [(a, b) for a in bs for b in bs if a != b]
        await eventually(lambda: all(bs[a].transport.connected(b) for a, b in pairs))

        sent: dict[int, list[tuple[str, Message]]] = {i: [] for i in bs}
        for a, b in pairs:
            for g, m in _traffic(a, b, 3, 3):
                bs[a].transport.send(b, g, m)
                sent[b].append((g, m))
        await eventually(lambda: all(len(bs[i].received) == len(sent[i]) for i in bs))
        for i in bs:
            # Per sender, order is preserved; across senders it interleaves.
            for src in bs:
                assert [x for x in bs[i].received if x[1].from_id == src] == [
                    x for x in sent[i] if x[1].from_id == src
                ]

        assert bs[1].transport.servicer().accepted == {}
        assert bs[2].transport.servicer().accepted == {1: 1}
        assert bs[3].transport.servicer().accepted == {1: 1, 2: 1}
        for a, b in pairs:
            assert bs[a].transport.stats()[b].streams == 1


async def test_messages_of_one_loop_iteration_travel_as_one_envelope() -> None:
    async with Cluster() as c:
        b1, b2 = await c.add(1), await c.add(2)
        b1.transport.add_peer(2)
        await eventually(lambda: b1.transport.connected(2) and b2.transport.connected(1))
        n = 500
        for i in range(n):  # no await: one loop iteration
            b1.transport.send(2, f"orders-{i}", msg(1, 2, i))
        for i in range(n):
            b2.transport.send(1, f"orders-{i}", msg(2, 1, i))
        await eventually(lambda: len(b2.received) == n and len(b1.received) == n)
        for t, peer in ((b1.transport, 2), (b2.transport, 1)):
            s = t.stats()[peer]
            assert (s.sent_envelopes, s.sent_messages) == (1, n)
            assert (s.received_envelopes, s.received_messages) == (1, n)


async def test_large_flush_is_split_into_bounded_envelopes() -> None:
    async with Cluster() as c:
        b1 = await c.add(1, max_envelope_bytes=10_000)
        b2 = await c.add(2)
        b1.transport.add_peer(2)
        await eventually(lambda: b1.transport.connected(2))
        sent = [(f"g{i}", msg(1, 2, i, data=bytes([i]) * 3000)) for i in range(10)]
        for g, m in sent:
            b1.transport.send(2, g, m)
        await eventually(lambda: len(b2.received) == len(sent))
        assert b2.received == sent
        assert b1.transport.stats()[2].sent_envelopes == 4  # 3 + 3 + 3 + 1


async def test_big_message_crosses_the_default_grpc_limit() -> None:
    # 8 MiB entries in a snapshot-sized APPEND: above gRPC's default 4 MiB receive limit.
    async with Cluster() as c:
        b1, b2 = await c.add(1), await c.add(2)
        b1.transport.add_peer(2)
        await eventually(lambda: b1.transport.connected(2) and b2.transport.connected(1))
        big = msg(2, 1, 3, data=b"\xab" * (8 << 20))
        b2.transport.send(1, "orders-0", big)
        await eventually(lambda: len(b1.received) == 1)
        assert b1.received == [("orders-0", big)]


async def test_peer_restart_is_reconnected_and_traffic_resumes() -> None:
    async with Cluster() as c:
        b1, b2 = await c.add(1), await c.add(2)
        b1.transport.add_peer(2)
        await eventually(lambda: b1.transport.connected(2) and b2.transport.connected(1))
        b1.transport.send(2, "g", msg(1, 2, 1))
        await eventually(lambda: len(b2.received) == 1)

        # Broker 2 goes away: its server and transport stop.
        await b2.stop()
        await eventually(lambda: not b1.transport.connected(2))
        for i in range(10):
            b1.transport.send(2, "g", msg(1, 2, 100 + i))
            await asyncio.sleep(0.01)
        assert b1.transport.stats()[2].dropped_messages == 10

        # A new broker 2 process on the same port.
        c.brokers.remove(b2)
        port = b2.port
        b2 = await c.add(2, start=False)
        b2.port = port
        c.addresses[2] = f"127.0.0.1:{port}"
        await b2.start()
        await eventually(lambda: b1.transport.connected(2) and b2.transport.connected(1))
        b1.transport.send(2, "g", msg(1, 2, 2))
        b2.transport.send(1, "g", msg(2, 1, 3))
        await eventually(lambda: len(b2.received) == 1 and len(b1.received) == 1)
        assert b2.received == [("g", msg(1, 2, 2))]
        assert b1.received == [("g", msg(2, 1, 3))]
        assert b1.transport.stats()[2].streams == 2
        assert b2.transport.servicer().accepted == {1: 1}


async def test_server_restart_with_same_transport_is_reconnected() -> None:
    async with Cluster() as c:
        b1, b2 = await c.add(1), await c.add(2)
        b1.transport.add_peer(2)
        await eventually(lambda: b1.transport.connected(2) and b2.transport.connected(1))
        await b2.stop_server()
        await eventually(lambda: not b1.transport.connected(2) and not b2.transport.connected(1))
        await asyncio.sleep(0.3)  # a few failed attempts: backoff grows
        await b2.start_server()
        await eventually(lambda: b1.transport.connected(2) and b2.transport.connected(1))
        b2.transport.send(1, "g", msg(2, 1, 5))
        await eventually(lambda: len(b1.received) == 1)
        assert b2.transport.servicer().accepted == {1: 2}


async def test_lower_broker_restart_is_served_again() -> None:
    async with Cluster() as c:
        b1, b2 = await c.add(1), await c.add(2)
        b1.transport.add_peer(2)
        await eventually(lambda: b2.transport.connected(1))
        await b1.stop()
        await eventually(lambda: not b2.transport.connected(1))
        c.brokers.remove(b1)
        b1 = await c.add(1)
        b1.transport.add_peer(2)
        await eventually(lambda: b1.transport.connected(2) and b2.transport.connected(1))
        b2.transport.send(1, "g", msg(2, 1, 9))
        await eventually(lambda: len(b1.received) == 1)
        assert b2.transport.servicer().accepted == {1: 2}
        assert b2.transport.stats()[1].streams == 2


async def test_deliver_errors_do_not_break_the_stream() -> None:
    async with Cluster() as c:
        b1, b2 = await c.add(1), await c.add(2)
        seen: list[str] = []

        def deliver(group: str, m: Message) -> None:
            seen.append(group)
            if group == "bad":
                raise RuntimeError("boom")

        b2.transport._deliver = deliver
        b1.transport.add_peer(2)
        await eventually(lambda: b1.transport.connected(2))
        for g in ("a", "bad", "b"):
            b1.transport.send(2, g, msg(1, 2, 1))
        await eventually(lambda: len(seen) == 3)
        b1.transport.send(2, "c", msg(1, 2, 2))
        await eventually(lambda: len(seen) == 4)
        assert seen == ["a", "bad", "b", "c"]
        assert b1.transport.stats()[2].streams == 1


async def test_stop_closes_the_stream_on_both_sides() -> None:
    async with Cluster() as c:
        b1, b2 = await c.add(1), await c.add(2)
        b1.transport.add_peer(2)
        await eventually(lambda: b1.transport.connected(2) and b2.transport.connected(1))
        await b2.transport.stop()
        assert not b2.transport.connected(1)
        await eventually(lambda: not b1.transport.connected(2))
        b2.transport.send(1, "g", msg(2, 1, 1))
        await asyncio.sleep(0.05)
        assert b2.transport.stats()[1].dropped_messages == 1
        assert b1.received == []
