"""The simulated network between brokers and clients, and request/answer calls over it.

Endpoints are names ("b1", "c3"). A message is delivered after a seeded delay (a few get a
long one, so messages overtake each other), or lost; a directed block (src, dst) drops
everything from src to dst (a one-way partition; both directions make a two-way one),
checked when a message leaves and again when it would arrive. A message runs on arrival
as work of the receiving process (tests/sim_broker/loop.py), so a paused receiver holds
it and a dead one loses it."""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from odradek.broker.errors import BrokerError, to_broker_error
from tests.sim_broker.loop import OWNER, Proc, SimLoop

T = TypeVar("T")

RETRIABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@dataclass
class NetParams:
    drop: float
    max_delay_s: float
    long_delay: float  # share of messages delayed up to 20 times longer (reordering)

    @classmethod
    def from_seed(cls, rng: random.Random) -> NetParams:
        return cls(drop=rng.choice([0.0, 0.005, 0.02, 0.05]),
                   max_delay_s=rng.choice([0.001, 0.005, 0.02]),
                   long_delay=rng.choice([0.0, 0.01, 0.05]))


class CallTimeout(Exception):
    """No answer within the call's timeout: the request or the answer was lost, or the
    peer is paused, dead or partitioned (the caller cannot tell which)."""


class Network:
    def __init__(self, loop: SimLoop, rng: random.Random, params: NetParams) -> None:
        self.loop = loop
        self.rng = rng
        self.p = params
        self.blocked: set[tuple[str, str]] = set()
        self.stats = {"messages": 0, "lost": 0, "blocked": 0}
        self._arrival: dict[tuple[str, str], float] = {}

    def send(self, src: str, dst: str, proc: Proc | None, fn: Callable[[], None],
             fifo: bool = False) -> None:
        """Runs fn as ``proc``'s work after the network delay, unless the message is lost.
        ``fifo``: never before an earlier fifo message from src to dst (a stream)."""
        self.stats["messages"] += 1
        if (src, dst) in self.blocked:
            self.stats["blocked"] += 1
            return
        if self.p.drop and self.rng.random() < self.p.drop:
            self.stats["lost"] += 1
            return
        delay = self.rng.uniform(0, self.p.max_delay_s)
        if self.p.long_delay and self.rng.random() < self.p.long_delay:
            delay *= 20
        if fifo:
            # A hair after the previous one: timers due at the same instant have no order.
            at = max(self.loop.time() + delay, self._arrival.get((src, dst), 0.0) + 1e-6)
            self._arrival[(src, dst)] = at
            delay = at - self.loop.time()
        ctx = contextvars.copy_context()
        ctx.run(OWNER.set, proc)
        self.loop.call_later(delay, self._arrive, src, dst, fn, context=ctx)

    def _arrive(self, src: str, dst: str, fn: Callable[[], None]) -> None:
        if (src, dst) in self.blocked:
            self.stats["blocked"] += 1
            return
        fn()

    def block(self, src: str, dst: str) -> None:
        self.blocked.add((src, dst))

    def heal(self) -> None:
        self.blocked.clear()

    async def call(self, src: str, dst: str, proc: Proc | None,
                   handler: Callable[[], Awaitable[T]], timeout_s: float) -> T:
        """Sends a request to ``dst`` (run there as ``proc``'s work: ``handler()``) and
        waits for its answer. Raises the handler's BrokerError (as a status would carry
        it) or CallTimeout."""
        caller = OWNER.get()
        answer: asyncio.Future[T] = self.loop.create_future()

        def settle(result: T | None, error: BaseException | None) -> None:
            if answer.done():
                return
            if error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(result)  # type: ignore[arg-type]

        def on_done(task: asyncio.Task[T]) -> None:
            if task.cancelled():
                return
            exc = task.exception()
            error: BaseException | None = None
            if exc is not None:
                error = exc if isinstance(exc, BrokerError) else (
                    to_broker_error(exc) if isinstance(exc, Exception) else None) or BrokerError(
                    grpc.StatusCode.INTERNAL, "INTERNAL", f"{type(exc).__name__}: {exc}")
            result = None if exc is not None else task.result()
            self.send(dst, src, caller, lambda: settle(result, error))

        def on_request() -> None:
            task = asyncio.ensure_future(handler())
            task.add_done_callback(on_done)

        self.send(src, dst, proc, on_request)
        try:
            return await asyncio.wait_for(answer, timeout_s)
        except TimeoutError:
            raise CallTimeout(f"{dst} did not answer {src} within {timeout_s:.2f}s") from None
