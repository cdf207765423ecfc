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

from odradek.broker.errors import BrokerError, to_broker_error
from tests.sim_broker.errors import make_error
from tests.sim_broker.loop import OWNER, Proc, SimLoop

T = TypeVar("T")

KEEPALIVE_S = 15.0
"""How long a call over a partitioned connection waits before the transport's keepalive
declares it dead (the broker's channels: 10 s keepalive time + 5 s timeout)."""


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
        self._calls = 0
        self._serving: dict[Proc, dict[int, Callable[[], None]]] = {}

    def send(self, src: str, dst: str, proc: Proc | None, fn: Callable[[], None],
             fifo: bool = False, on_blocked: Callable[[], None] | None = None) -> None:
        """Runs fn as ``proc``'s work after the network delay, unless the message is lost.
        ``fifo``: never before an earlier fifo message from src to dst (a stream).
        ``on_blocked``: the message belongs to a call over a connection, which TCP makes
        reliable: a random loss only delays it (a retransmission), and a partition calls
        on_blocked instead of losing it silently."""
        self.stats["messages"] += 1
        if (src, dst) in self.blocked:
            self.stats["blocked"] += 1
            if on_blocked is not None:
                on_blocked()
            return
        delay = self.rng.uniform(0, self.p.max_delay_s)
        if self.p.drop and self.rng.random() < self.p.drop:
            self.stats["lost"] += 1
            if on_blocked is None:
                return
            delay += self.rng.uniform(0.2, 1.0)
        if self.p.long_delay and self.rng.random() < self.p.long_delay:
            delay *= 20
        if fifo:
            # A hair after the previous one: timers due at the same instant have no order.
            at = max(self.loop.time() + delay, self._arrival.get((src, dst), 0.0) + 1e-6)
            self._arrival[(src, dst)] = at
            delay = at - self.loop.time()
        ctx = contextvars.copy_context()
        ctx.run(OWNER.set, proc)
        self.loop.call_later(delay, self._arrive, src, dst, fn, on_blocked, context=ctx)

    def _arrive(self, src: str, dst: str, fn: Callable[[], None],
                on_blocked: Callable[[], None] | None) -> None:
        if (src, dst) in self.blocked:
            self.stats["blocked"] += 1
            if on_blocked is not None:
                on_blocked()
            return
        fn()

    def reset(self, proc: Proc) -> None:
        """``proc`` died: its connections reset, so the calls it was serving fail soon."""
        for fail in self._serving.pop(proc, {}).values():
            fail()

    def block(self, src: str, dst: str) -> None:
        self.blocked.add((src, dst))

    def heal(self) -> None:
        self.blocked.clear()

    async def call(self, src: str, dst: str, proc: Proc | None,
                   handler: Callable[[], Awaitable[T]], timeout_s: float) -> T:
        """Sends a request to ``dst`` (run there as ``proc``'s work: ``handler()``) and
        waits for its answer. Raises the handler's BrokerError (as a status would carry
        it) or CallTimeout: at the timeout, as gRPC's deadline, when the peer is paused
        (its kernel keeps the connection up); KEEPALIVE_S after a partition cut the
        connection; about a round trip after the peer died (connection reset)."""
        caller = OWNER.get()
        answer: asyncio.Future[T] = self.loop.create_future()
        self._calls += 1
        call_id = self._calls

        def settle(result: T | None, error: BaseException | None) -> None:
            if not answer.done():
                if error is not None:
                    answer.set_exception(error)
                else:
                    answer.set_result(result)  # type: ignore[arg-type]

        def broken(why: str, after_s: float) -> None:
            ctx = contextvars.copy_context()
            ctx.run(OWNER.set, caller)
            self.loop.call_later(after_s, settle, None, CallTimeout(f"{dst}: {why}"),
                                 context=ctx)

        def cut() -> None:
            broken("connection lost (keepalive)", KEEPALIVE_S)

        def on_done(task: asyncio.Task[T]) -> None:
            if proc is not None:
                self._serving.get(proc, {}).pop(call_id, None)
            if task.cancelled():
                return
            exc = task.exception()
            error: BaseException | None = None
            if exc is not None:
                error = exc if isinstance(exc, BrokerError) else (
                    to_broker_error(exc) if isinstance(exc, Exception) else None) or make_error(
                    "INTERNAL", f"{type(exc).__name__}: {exc}")
            result = None if exc is not None else task.result()
            self.send(dst, src, caller, lambda: settle(result, error), on_blocked=cut)

        def on_request() -> None:
            if proc is not None:
                self._serving.setdefault(proc, {})[call_id] = lambda: broken(
                    "connection reset", 2 * self.p.max_delay_s)
            task = asyncio.ensure_future(handler())
            task.add_done_callback(on_done)

        if proc is None or proc.dead:
            broken("connection refused", 2 * self.p.max_delay_s)
        else:
            self.send(src, dst, proc, on_request, on_blocked=cut)
        try:
            return await asyncio.wait_for(answer, timeout_s)
        except TimeoutError:
            raise CallTimeout(f"{dst} did not answer {src} within {timeout_s:.2f}s") from None
