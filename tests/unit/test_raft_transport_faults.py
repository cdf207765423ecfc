"""RaftTransport under faults: dead and slow peers, refused and superseded streams."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from odradek.broker.peers import raft_transport as transport_mod
from odradek.broker.peers.raft_codec import estimate_size
from odradek.broker.peers.raft_service import add_raft_service
from odradek.broker.peers.raft_transport import (
    CHANNEL_OPTIONS,
    SERVER_OPTIONS,
    RaftTransport,
)
from odradek.v1 import raft_pb2 as pb
from odradek.v1 import raft_pb2_grpc as pb_grpc
from tests.unit.raft_transport_util import WAIT, Cluster, eventually, free_port, msg


async def test_messages_to_a_down_peer_are_dropped_and_counted() -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    lookups: list[int] = []

    def resolve(bid: int) -> str | None:
        lookups.append(bid)
        return dead if bid == 2 else None

    t = RaftTransport(1, resolve, lambda g, m: None)
    t.start()
    try:
        payload = b"x" * 1024
        for i in range(200):
            for g in range(50):
                t.send(2, f"orders-{g}", msg(1, 2, i, data=payload))
                t.send(3, f"orders-{g}", msg(1, 3, i))  # never resolvable
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.01)
        for peer in (2, 3):
            s = t.stats()[peer]
            assert not t.connected(peer) and not s.connected
            assert (s.dropped_messages, s.dropped_envelopes) == (10_000, 200)
            assert s.sent_messages == s.pending_bytes == s.streams == 0
            assert t._peers[peer].buffer == []
        # Backoff: roughly 50 ms doubling to 1 s, not a busy loop.
        assert 3 <= lookups.count(2) <= 12
    finally:
        async with asyncio.timeout(WAIT):
            await t.stop()


class _Handshaker(pb_grpc.RaftServicer):
    """A peer that answers the opening and then never reads (a stuck broker)."""

    def __init__(self, broker_id: int) -> None:
        self.id = broker_id
        self.opened = 0

    async def Exchange(self, request_iterator: Any, context: Any) -> None:  # noqa: N802
        hello = await context.read()
        await context.write(pb.RaftEnvelope(from_broker=self.id, to_broker=hello.from_broker))
        self.opened += 1
        await asyncio.Event().wait()


async def _serve(servicer: Any, c: Cluster) -> str:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    add_raft_service(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    c.servers.append(server)
    return f"127.0.0.1:{port}"


async def test_a_stuck_peer_never_holds_more_than_the_bound() -> None:
    bound = 1 << 20
    async with Cluster() as c:
        c.addresses[2] = await _serve(_Handshaker(2), c)
        b1 = await c.add(1, max_pending_bytes=bound)
        b1.transport.add_peer(2)
        await eventually(lambda: b1.transport.connected(2))
        m = msg(1, 2, 1, data=b"y" * 100_000)
        n = 300  # 30 MB in all, far beyond flow control windows and the bound
        peak = 0
        for _ in range(n):
            b1.transport.send(2, "orders-0", m)
            await asyncio.sleep(0.001)
            peak = max(peak, b1.transport.stats()[2].pending_bytes)
        s = b1.transport.stats()[2]
        assert s.connected
        assert peak <= bound
        assert s.dropped_messages > 0
        queued = s.pending_bytes // estimate_size(m)
        in_flight = n - (s.sent_messages + s.dropped_messages + queued)
        assert in_flight in (0, 1)  # the envelope the writer awaits flow control for


async def test_bogus_dialers_are_refused() -> None:
    async with Cluster() as c:
        b2 = await c.add(2)
        async with grpc.aio.insecure_channel(c.addresses[2]) as ch:
            stub = pb_grpc.RaftStub(ch)
            for src, dst, code, text in [
                (3, 2, grpc.StatusCode.INVALID_ARGUMENT, "lower id"),
                (2, 2, grpc.StatusCode.INVALID_ARGUMENT, "lower id"),
                (1, 5, grpc.StatusCode.FAILED_PRECONDITION, "not broker 5"),
            ]:
                call = stub.Exchange()
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    async with asyncio.timeout(WAIT):
                        await call.write(pb.RaftEnvelope(from_broker=src, to_broker=dst))
                        await call.read()
                assert err.value.code() == code
                assert text in (err.value.details() or "")
        assert b2.transport.servicer().accepted == {}
        assert not b2.transport.connected(1) and not b2.transport.connected(3)


async def test_a_transport_not_started_refuses_streams() -> None:
    async with Cluster() as c:
        b2 = await c.add(2, start=False)
        await b2.start_server()
        async with grpc.aio.insecure_channel(c.addresses[2]) as ch:
            call = pb_grpc.RaftStub(ch).Exchange()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async with asyncio.timeout(WAIT):
                    # The refusal may come before the opening is even written.
                    await call.write(pb.RaftEnvelope(from_broker=1, to_broker=2))
                    await call.read()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_misrouted_dial_is_refused_and_retried() -> None:
    async with Cluster() as c:
        b1, b3 = await c.add(1), await c.add(3)
        c.addresses[2] = c.addresses[3]  # stale address book: broker 3 now lives there
        b1.transport.add_peer(2)
        await asyncio.sleep(0.3)
        assert not b1.transport.connected(2) and not b3.transport.connected(1)
        assert b3.transport.servicer().accepted == {}
        b1.transport.send(2, "g", msg(1, 2, 1))
        await asyncio.sleep(0.01)
        assert b3.received == []
        assert b1.transport.stats()[2].dropped_messages == 1


async def test_a_new_stream_from_the_same_dialer_supersedes_the_old_one() -> None:
    async with Cluster() as c:
        b2 = await c.add(2)
        # A stale stream from broker 1 (e.g. half-open after broker 1's host rebooted).
        ch = grpc.aio.insecure_channel(c.addresses[2])
        try:
            stale = pb_grpc.RaftStub(ch).Exchange()
            await stale.write(pb.RaftEnvelope(from_broker=1, to_broker=2))
            async with asyncio.timeout(WAIT):
                hello = await stale.read()
            assert (hello.from_broker, hello.to_broker) == (2, 1)
            await eventually(lambda: b2.transport.connected(1))

            b1 = await c.add(1)
            b1.transport.add_peer(2)
            await eventually(lambda: b1.transport.connected(2))
            # The stale stream is ended by broker 2; only the new one carries traffic.
            async with asyncio.timeout(WAIT):
                end = await stale.read()
            assert end is grpc.aio.EOF
            b2.transport.send(1, "g", msg(2, 1, 4))
            await eventually(lambda: len(b1.received) == 1)
            assert b2.transport.servicer().accepted == {1: 2}
            assert b2.transport.stats()[1].streams == 2
        finally:
            await ch.close()


async def test_a_message_over_the_grpc_limit_is_dropped_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transport_mod, "MAX_MESSAGE_BYTES", 1 << 20)
    async with Cluster() as c:
        b1 = await c.add(1, max_envelope_bytes=100_000)
        b2 = await c.add(2)
        b1.transport.add_peer(2)
        await eventually(lambda: b1.transport.connected(2))
        small = msg(1, 2, 1, data=b"s" * 10)
        b1.transport.send(2, "a", small)
        b1.transport.send(2, "huge", msg(1, 2, 2, data=b"h" * (2 << 20)))
        b1.transport.send(2, "b", small)
        await eventually(lambda: len(b2.received) == 2)
        assert [g for g, _ in b2.received] == ["a", "b"]
        s = b1.transport.stats()[2]
        assert s.dropped_messages == 1 and s.streams == 1


def test_channel_and_server_options_raise_message_limits() -> None:
    for opts in (CHANNEL_OPTIONS, SERVER_OPTIONS):
        d = dict(opts)
        # Above grpc's 4 MiB default: one entry of a whole Produce (32 MiB) and its envelope.
        assert d["grpc.max_send_message_length"] == 33 * 1024 * 1024
        assert d["grpc.max_receive_message_length"] == 33 * 1024 * 1024
