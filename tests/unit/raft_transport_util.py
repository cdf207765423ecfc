"""Helpers for the RaftTransport tests: brokers with real grpc.aio servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc

from odradek.broker.peers.raft_service import add_raft_service
from odradek.broker.peers.raft_transport import SERVER_OPTIONS, RaftTransport
from odradek.raft.types import Entry, EntryKind, Message, MessageType
from tests.brokers import free_port

WAIT = 30.0
"""Upper bound of every wait in these tests (seconds)."""




async def eventually(pred: Callable[[], bool], timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.005)


def msg(src: int, dst: int, n: int, data: bytes = b"") -> Message:
    """A distinguishable message from ``src`` to ``dst`` (n goes into term and index)."""
    if data:
        return Message(
            MessageType.APPEND, src, dst, n, prev_index=n - 1, prev_term=n,
            entries=[Entry(n, 1, n, data, EntryKind.NORMAL)], commit=n - 1,
        )
    return Message(MessageType.HEARTBEAT, src, dst, n, commit=n)


class Broker:
    """A RaftTransport, its grpc.aio server, and what it received."""

    def __init__(self, broker_id: int, addresses: dict[int, str], **kwargs: object) -> None:
        self.id = broker_id
        self.addresses = addresses
        self.port = free_port()
        addresses[broker_id] = f"127.0.0.1:{self.port}"
        self.received: list[tuple[str, Message]] = []
        self.transport = RaftTransport(
            broker_id, addresses.get, self._deliver, **kwargs  # type: ignore[arg-type]
        )
        self.server: grpc.aio.Server | None = None

    def _deliver(self, group: str, m: Message) -> None:
        self.received.append((group, m))

    async def start(self) -> None:
        await self.start_server()
        self.transport.start()

    async def start_server(self) -> None:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        add_raft_service(self.transport.servicer(), server)
        assert server.add_insecure_port(f"127.0.0.1:{self.port}") == self.port
        await server.start()
        self.server = server

    async def stop(self) -> None:
        await self.transport.stop()
        await self.stop_server()

    async def stop_server(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop(0)


class Cluster:
    """``async with Cluster() as c``: brokers made by ``c.add`` are all stopped on exit."""

    def __init__(self) -> None:
        self.addresses: dict[int, str] = {}
        self.brokers: list[Broker] = []
        self.servers: list[grpc.aio.Server] = []

    async def add(self, broker_id: int, start: bool = True, **kwargs: object) -> Broker:
        b = Broker(broker_id, self.addresses, **kwargs)
        self.brokers.append(b)
        if start:
            await b.start()
        return b

    async def __aenter__(self) -> Cluster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        async with asyncio.timeout(WAIT):
            for b in self.brokers:
                # stop() must be prompt: it never waits out a timeout on a live stream.
                async with asyncio.timeout(1.0):
                    await b.transport.stop()
                await b.stop_server()
            for s in self.servers:
                await s.stop(0)
