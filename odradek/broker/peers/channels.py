"""The gRPC channels a broker keeps to the others (controller calls, forwarding, offset
lookups), one per address, opened on first use."""

from __future__ import annotations

import asyncio

import grpc

from odradek.security.tls import ClientTLS, open_channel


class ChannelPool:
    def __init__(self, tls: ClientTLS | None) -> None:
        self._tls = tls
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def get(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = open_channel(address, self._tls)
        return channel

    def drop(self, address: str) -> None:
        """Forgets a channel that failed: the next one is made with freshly read TLS files
        (a rotated certificate). Plaintext channels reconnect by themselves and stay."""
        if self._tls is None:
            return
        channel = self._channels.pop(address, None)
        if channel is not None:
            task = asyncio.get_running_loop().create_task(channel.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
