"""What the coordinator has to say to one member's stream, queued until the front end
sends it."""

from __future__ import annotations

import asyncio

from odradek.broker.errors import BrokerError
from odradek.broker.groups.types import MemberMessage


class MemberChannel:
    """What the coordinator has to say to one member's stream: messages, then possibly an
    error that ends the stream (None: a clean end)."""

    def __init__(self, group_id: str, member_id: str) -> None:
        self.group_id = group_id
        self.member_id = member_id
        self._queue: asyncio.Queue[MemberMessage | BrokerError | None] = asyncio.Queue()
        self.closed = False

    def send(self, message: MemberMessage) -> None:
        if not self.closed:
            self._queue.put_nowait(message)

    def close(self, error: BrokerError | None = None) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(error)

    async def next(self) -> MemberMessage | BrokerError | None:
        return await self._queue.get()
