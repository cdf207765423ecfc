"""Delivery futures: one per record sent, resolved a batch at a time.

An asyncio.Future per record cost more than building the record (its creation, its
set_result, and a loop callback per done-callback, each a trip through the event loop).
A RecordFuture is a small handle onto its batch's outcome: nothing is done per record
when a batch is acknowledged unless someone waits on that record, and the callbacks of
a whole batch run from one loop callback. It follows the asyncio Future protocol, so
`await`, asyncio.gather, asyncio.wait, wait_for and shield take it as they take a Future."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Generator
from typing import Any, NamedTuple

_Callback = tuple[Callable[["RecordFuture"], object], "contextvars.Context"]


class RecordMetadata(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int


class Delivery:
    """The outcome of one batch, shared by the futures of its records."""

    __slots__ = ("loop", "topic", "partition", "timestamps", "base_offset", "append_time",
                 "error", "done", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop, topic: str, partition: int) -> None:
        self.loop = loop
        self.topic = topic
        self.partition = partition
        self.timestamps: list[int] = []  # the create time of each record, by index
        self.base_offset = -1
        self.append_time = -1  # > 0: the broker stamped every record (LogAppendTime)
        self.error: BaseException | None = None
        self.done = False
        self.waiting: list[RecordFuture] = []  # futures that have done-callbacks

    def add(self, timestamp_ms: int) -> RecordFuture:
        fut = RecordFuture(self, len(self.timestamps))
        self.timestamps.append(timestamp_ms)
        return fut

    def __len__(self) -> int:
        return len(self.timestamps)

    def succeed(self, base_offset: int, append_time: int) -> None:
        if not self.done:
            self.base_offset = base_offset
            self.append_time = append_time
            self._finish()

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.error = error
            self._finish()

    def _finish(self) -> None:
        self.done = True
        if self.waiting:
            waiting, self.waiting = self.waiting, []
            self.loop.call_soon(_run_callbacks, self.loop, waiting)


def _run_callbacks(loop: asyncio.AbstractEventLoop, futures: list[RecordFuture]) -> None:
    for fut in futures:
        first, context, more = fut._callback, fut._context, fut._more
        fut._callback = fut._context = fut._more = None
        if first is not None and context is not None:
            _run_one(loop, fut, first, context)
        for fn, ctx in more or ():
            _run_one(loop, fut, fn, ctx)


def _run_one(loop: asyncio.AbstractEventLoop, fut: RecordFuture,
             fn: Callable[[RecordFuture], object], context: contextvars.Context) -> None:
    try:
        context.run(fn, fut)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # noqa: BLE001 - reported as the loop reports a callback's
        loop.call_exception_handler({
            "message": f"exception in a done-callback of {fut!r}", "exception": exc,
            "future": fut})


class RecordFuture:
    """The delivery of one record: resolves to its RecordMetadata, or raises the
    OdradekError that failed its batch. Cancelling it stops nobody from delivering the
    record; it only stops waiting for it, as with a Kafka producer's future."""

    # The first done-callback has slots of its own: most records get one at most, and
    # every object kept per pending record is one more for the garbage collector to walk.
    __slots__ = ("_delivery", "_index", "_callback", "_context", "_more", "_cancelled",
                 "_cancel_message", "_asyncio_future_blocking")

    def __init__(self, delivery: Delivery, index: int) -> None:
        self._delivery = delivery
        self._index = index
        self._callback: Callable[[RecordFuture], object] | None = None
        self._context: contextvars.Context | None = None
        self._more: list[_Callback] | None = None
        self._cancelled = False
        self._cancel_message: str | None = None
        self._asyncio_future_blocking = False

    def __repr__(self) -> str:
        d = self._delivery
        state = ("cancelled" if self._cancelled else "pending" if not d.done
                 else "failed" if d.error is not None else "done")
        return f"<RecordFuture {d.topic}-{d.partition} #{self._index} {state}>"

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._delivery.loop

    def done(self) -> bool:
        return self._cancelled or self._delivery.done

    def cancelled(self) -> bool:
        return self._cancelled

    def _make_cancelled_error(self) -> asyncio.CancelledError:
        # asyncio.gather calls this on the futures it gathers.
        return asyncio.CancelledError(*(() if self._cancel_message is None
                                        else (self._cancel_message,)))

    def result(self) -> RecordMetadata:
        if self._cancelled:
            raise self._make_cancelled_error()
        d = self._delivery
        if not d.done:
            raise asyncio.InvalidStateError("the record is not delivered yet")
        if d.error is not None:
            raise d.error
        i = self._index
        return RecordMetadata(d.topic, d.partition, d.base_offset + i,
                              d.append_time if d.append_time > 0 else d.timestamps[i])

    def exception(self) -> BaseException | None:
        if self._cancelled:
            raise self._make_cancelled_error()
        d = self._delivery
        if not d.done:
            raise asyncio.InvalidStateError("the record is not delivered yet")
        return d.error

    def add_done_callback(self, fn: Callable[[RecordFuture], object], *,
                          context: contextvars.Context | None = None) -> None:
        if context is None:
            context = contextvars.copy_context()
        scheduled = self._callback is not None or self._more is not None
        if self._callback is None:
            self._callback, self._context = fn, context
        elif self._more is None:
            self._more = [(fn, context)]
        else:
            self._more.append((fn, context))
        if scheduled:
            return
        if self.done():
            self._delivery.loop.call_soon(_run_callbacks, self._delivery.loop, [self])
        else:
            self._delivery.waiting.append(self)

    def remove_done_callback(self, fn: Callable[[RecordFuture], object]) -> int:
        removed = 0
        if self._callback is not None and self._callback == fn:
            self._callback = self._context = None
            removed = 1
        if self._more:
            kept = [entry for entry in self._more if entry[0] != fn]
            removed += len(self._more) - len(kept)
            self._more = kept
        return removed

    def cancel(self, msg: Any | None = None) -> bool:
        if self.done():
            return False
        self._cancelled = True
        self._cancel_message = msg
        if self._callback is not None or self._more:
            self._delivery.loop.call_soon(_run_callbacks, self._delivery.loop, [self])
        return True

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        if not self.done():
            self._asyncio_future_blocking = True
            yield self  # the task waits for it, as it does for a Future
        if not self.done():
            raise RuntimeError("await was not used with the future")
        return self.result()

    __iter__ = __await__
