"""RecordFuture keeps the asyncio Future protocol: what takes a Future takes it."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from odradek.client.delivery import Delivery, RecordFuture, RecordMetadata
from odradek.client.errors import OdradekError

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def batch(n: int, topic: str = "t", partition: int = 2) -> tuple[Delivery, list[RecordFuture]]:
    d = Delivery(asyncio.get_running_loop(), topic, partition)
    return d, [d.add(1000 + i) for i in range(n)]


async def test_await_gather_and_wait() -> None:
    d, futs = batch(3)
    assert asyncio.isfuture(futs[0]) and not futs[0].done()
    with pytest.raises(asyncio.InvalidStateError):
        futs[0].result()
    gathered = asyncio.gather(*futs)
    waited = asyncio.ensure_future(asyncio.wait(futs))
    awaited = asyncio.ensure_future(_await(futs[1]))
    await asyncio.sleep(0)
    d.succeed(40, -1)
    assert await gathered == [RecordMetadata("t", 2, 40 + i, 1000 + i) for i in range(3)]
    done, pending = await waited
    assert done == set(futs) and not pending
    assert await awaited == RecordMetadata("t", 2, 41, 1001)
    assert await futs[2] == RecordMetadata("t", 2, 42, 1002)  # awaiting a done one


async def _await(fut: RecordFuture) -> RecordMetadata:
    return await fut


async def test_append_time_and_failure() -> None:
    d, futs = batch(2)
    d.succeed(7, 5555)
    assert [f.result().timestamp for f in futs] == [5555, 5555]
    d, futs = batch(2)
    d.fail(OdradekError("gone", "UNAVAILABLE"))
    d.succeed(1, -1)  # the first outcome stays
    assert isinstance(futs[0].exception(), OdradekError)
    with pytest.raises(OdradekError, match="gone"):
        await futs[1]
    results = await asyncio.gather(*futs, return_exceptions=True)
    assert all(isinstance(r, OdradekError) for r in results)


async def test_callbacks_run_once_in_their_context_and_a_failing_one_is_reported() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
    try:
        d, futs = batch(2)
        seen: list[tuple[int, str]] = []

        def boom(_: RecordFuture) -> None:
            raise ValueError("callback broke")

        WHO.set("sender")
        futs[0].add_done_callback(boom)
        futs[0].add_done_callback(lambda f: seen.append((f.result().offset, WHO.get())))
        removed = futs[1].add_done_callback(boom)
        assert removed is None and futs[1].remove_done_callback(boom) == 1
        WHO.set("other")
        d.succeed(10, -1)
        assert not seen  # callbacks run from the loop, not from succeed()
        await _until(lambda: bool(seen))
        assert seen == [(10, "sender")]
        assert len(reported) == 1 and isinstance(reported[0]["exception"], ValueError)
        # Added after delivery: runs soon, once.
        futs[1].add_done_callback(lambda f: seen.append((f.result().offset, "late")))
        await _until(lambda: len(seen) == 2)
        await asyncio.sleep(0)
        assert seen == [(10, "sender"), (11, "late")]
    finally:
        loop.set_exception_handler(None)


async def test_cancel_stops_waiting_only_for_that_record() -> None:
    d, futs = batch(2)
    cancelled: list[bool] = []
    futs[0].add_done_callback(lambda f: cancelled.append(f.cancelled()))
    assert futs[0].cancel("no longer wanted") and not futs[0].cancel()
    assert futs[0].done() and futs[0].cancelled()
    with pytest.raises(asyncio.CancelledError):
        futs[0].result()
    await _until(lambda: bool(cancelled))
    d.succeed(0, -1)
    assert futs[1].result().offset == 1 and cancelled == [True]
    assert not futs[1].cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.gather(futs[0], futs[1])


async def test_wait_for_timeout_task_cancel_and_shield() -> None:
    d, futs = batch(3)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(futs[0], 0.01)
    assert futs[0].cancelled()
    waiter = asyncio.ensure_future(_await(futs[1]))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert futs[1].cancelled()
    shielded = asyncio.ensure_future(asyncio.shield(futs[2]))
    await asyncio.sleep(0)
    shielded.cancel()
    with pytest.raises(asyncio.CancelledError):
        await shielded
    assert not futs[2].done()
    d.succeed(3, -1)
    assert (await futs[2]).offset == 5


async def _until(condition: Any) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0)
