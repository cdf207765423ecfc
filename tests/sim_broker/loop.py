"""An asyncio event loop on virtual time, whose work belongs to simulated processes.

Time: ``time()`` is a number the loop advances itself. When nothing is ready, the loop's
selector is asked to wait until the next timer; the virtual selector polls the real one
without blocking (only the loop's own wake-up pipe is registered: the simulation does no
socket I/O) and moves the clock to that timer instead of sleeping. So asyncio.sleep,
wait_for and every other timeout run on simulated time, and with all I/O simulated the
callback order is a function of the seed alone.

Ownership: every callback carries the contextvars Context it was scheduled from (asyncio
does that for tasks, futures and timers), and ``OWNER`` in that context names the process
(one life of a broker, a ``Proc``) whose work it is. Before a callback runs the loop looks
at its owner: a paused process's callbacks are held, in order, and released when it
resumes (its timers fire late, as a stopped process's do); a dead process's callbacks are
dropped, so its tasks never run again, as after kill -9 (no ``finally`` of theirs runs)."""

from __future__ import annotations

import asyncio
import contextvars
import selectors
from collections.abc import Callable
from typing import Any

_Held = tuple[contextvars.Context, Callable[..., object], tuple[Any, ...]]


class Proc:
    """One life of a simulated process (a broker until it crashes or is restarted)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.paused = False
        self.dead = False
        self.held: list[_Held] = []


OWNER: contextvars.ContextVar[Proc | None] = contextvars.ContextVar("sim_owner", default=None)


class Deadlock(RuntimeError):
    """Nothing is ready and no timer is set: the simulation can never move again."""


TURN_S = 1e-6
"""Virtual time one turn of the event loop takes."""

MAX_SPINS = 2_000_000
"""Callbacks run without the loop ever waiting for a timer, beyond which the loop calls
it a livelock (something reschedules itself for ever) and stops."""


def describe(callback: Callable[..., object]) -> str:
    """The callback, and for a task step the chain of coroutines it is suspended in."""
    task = getattr(callback, "__self__", None)
    if not isinstance(task, asyncio.Task):
        return repr(callback)
    names = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        where = f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "?"
        names.append(f"{getattr(coro, '__qualname__', type(coro).__name__)} ({where})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " -> ".join(names)


class _VirtualSelector(selectors.BaseSelector):
    def __init__(self, loop: SimLoop) -> None:
        self._loop = loop
        self._real = selectors.DefaultSelector()

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = self._real.select(0)
        if not events and timeout is None:
            raise Deadlock("nothing is scheduled")
        if not events and timeout:
            self._loop.advance(timeout)
            self._loop.idle()
        # Every turn of the loop costs a little time, as it does for real. asyncio runs a
        # timer up to its clock resolution early; without this, a loop that waits for
        # "the rest" of a deadline (remaining < resolution) could time out again and
        # again at the same instant.
        self._loop.advance(TURN_S)
        return events

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Any:
        return self._real.get_map()


class SimLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        super().__init__(_VirtualSelector(self))
        self.errors: list[str] = []
        self.livelock: str | None = None
        self._spins = 0
        self.set_exception_handler(self._on_error)

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def idle(self) -> None:
        self._spins = 0

    # Every callback goes through _guard, with the Context it will run in.
    def call_soon(self, callback: Callable[..., object], *args: Any,
                  context: contextvars.Context | None = None) -> asyncio.Handle:
        ctx = context if context is not None else contextvars.copy_context()
        return super().call_soon(self._guard, ctx, callback, args, context=ctx)

    def call_at(self, when: float, callback: Callable[..., object], *args: Any,
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        ctx = context if context is not None else contextvars.copy_context()
        return super().call_at(when, self._guard, ctx, callback, args, context=ctx)

    def _guard(self, ctx: contextvars.Context, callback: Callable[..., object],
               args: tuple[Any, ...]) -> None:
        self._spins += 1
        if self._spins > MAX_SPINS and self.livelock is None:
            self.livelock = f"at t={self._now:.3f}s: {describe(callback)}"
            self.stop()
        owner = ctx.get(OWNER)
        if owner is not None:
            if owner.dead:
                return
            if owner.paused:
                owner.held.append((ctx, callback, args))
                return
        callback(*args)

    def pause(self, proc: Proc) -> None:
        proc.paused = True

    def resume(self, proc: Proc) -> None:
        """Releases the held work in the order it was due."""
        proc.paused = False
        held, proc.held = proc.held, []
        for ctx, callback, args in held:
            super().call_soon(self._guard, ctx, callback, args, context=ctx)

    def kill(self, proc: Proc) -> None:
        proc.dead = True
        proc.held = []

    def run_as(self, proc: Proc, fn: Callable[[], Any]) -> Any:
        """Runs fn now with ``proc`` as the owner of whatever it schedules."""
        ctx = contextvars.copy_context()
        ctx.run(OWNER.set, proc)
        return ctx.run(fn)

    def spawn_as(self, proc: Proc | None, coro: Any) -> asyncio.Task[Any]:
        ctx = contextvars.copy_context()
        ctx.run(OWNER.set, proc)
        task = self.create_task(coro, context=ctx)
        if proc is not None:
            # A task of a process that dies stays pending for ever: that is the point.
            task._log_destroy_pending = False  # type: ignore[attr-defined]
        return task

    def _on_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        exc = context.get("exception")
        if message.startswith("Task was destroyed but it is pending"):
            return  # a killed broker's task, collected
        self.errors.append(f"{message}: {exc!r}" if exc is not None else message)
