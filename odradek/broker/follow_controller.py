"""A call to the controller that gives up once another broker is the controller."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
CHECK_S = 0.25


class ControllerMoved(Exception):
    pass


async def unless_moved(call: Awaitable[T], sent_to: int | None,
                       controller: Callable[[], int | None]) -> T:
    """Awaits ``call``, made to controller ``sent_to``; raises ControllerMoved as soon as
    ``controller()`` names another. A paused controller (SIGSTOP, a stalled machine)
    keeps its connections open: the call would wait out its whole deadline while another
    broker has taken over."""
    task = asyncio.ensure_future(call)
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=CHECK_S)
            if not task.done() and controller() != sent_to:
                raise ControllerMoved(f"the controller changed from {sent_to} to "
                                      f"{controller()}")
        return task.result()
    finally:
        task.cancel()
