"""The clients, on one asyncio loop in a thread of their own, while the schedule injects
faults from the test's thread: idempotent acks=quorum producers writing unique values
("<producer>:<seq>"), a named producer whose instances fence one another, tailing
consumers that never reset, a consumer group whose members join and leave and commit
what they read, and an admin reassigning partitions and draining a broker."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Coroutine
from typing import Any

from odradek.client import Admin, Consumer, Producer
from odradek.client.errors import (
    CorruptRecordError,
    OdradekError,
    OffsetOutOfRangeError,
    ProducerFencedError,
)
from tests.chaos.checker import TP, History

TOPIC = "chaos"
PARTITIONS = 3
WINDOW = 16  # records in flight per producer
TAIL_TIMEOUT_MS = 5_000


class Workload:
    def __init__(self, bootstrap: str, history: History, rng: random.Random,
                 brokers: list[int], log: Any = print) -> None:
        self.bootstrap = bootstrap
        self.history = history
        self.rng = rng
        self.brokers = brokers
        self.log = log
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="workload",
                                       daemon=True)
        self.stopping: asyncio.Event | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.drained: int | None = None
        self.tail_positions: dict[TP, int] = {}

    # ------------------------------------------------------------ control (test thread)
    def call(self, coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, topic_configs: dict[str, str]) -> None:
        self.thread.start()
        self.call(self._start(topic_configs), 120)

    def stop(self, timeout: float = 60.0) -> None:
        """Stops every client (each closes its channels); the loop thread ends."""
        if not self.thread.is_alive():
            return
        try:
            self.call(self._stop(), timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)

    def caught_up(self, ends: dict[TP, int]) -> bool:
        return all(self.tail_positions.get(tp, 0) >= end for tp, end in ends.items())

    # ------------------------------------------------------------ on the loop
    async def _start(self, topic_configs: dict[str, str]) -> None:
        self.stopping = asyncio.Event()
        async with Admin(self.bootstrap) as admin:
            await admin.create_topic(TOPIC, PARTITIONS, replication_factor=3,
                                     configs=topic_configs)
        spawn = self._spawn
        for name in ("p0", "p1"):
            spawn(self._producer(name))
        spawn(self._named_producer("named"))
        for partition in range(PARTITIONS):
            spawn(self._tail((TOPIC, partition)))
        spawn(self._group())
        spawn(self._admin())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(self.loop.create_task(coro, name=getattr(coro, "__qualname__", None)))

    async def _stop(self) -> None:
        assert self.stopping is not None
        self.stopping.set()
        done, pending = await asyncio.wait(self.tasks, timeout=45)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                self.history.violation("WORKLOAD_FAILED",
                                       f"{task.get_name()}: {task.exception()!r}")

    async def _pause(self, seconds: float) -> bool:
        """Waits up to seconds, or until the run stops; True when it stops."""
        assert self.stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
        return self.stopping.is_set()

    async def _producer(self, name: str) -> None:
        """Instances of one logical producer, replaced now and then (a new producer id);
        values are numbered across instances so that the order check spans them."""
        seq = 0
        instance = 0
        assert self.stopping is not None
        while not self.stopping.is_set():
            producer = Producer(self.bootstrap, acks="quorum", linger_ms=2,
                                delivery_timeout_ms=30_000, request_timeout_ms=5_000)
            instance += 1
            try:
                for _ in range(self.rng.randrange(200, 2000)):
                    if self.stopping.is_set():
                        break
                    futures = []
                    try:
                        for _ in range(WINDOW):
                            value = b"%s:%d" % (name.encode(), seq)
                            seq += 1
                            futures.append((value, await producer.send(
                                TOPIC, value, partition=(seq - 1) % PARTITIONS)))
                    except OdradekError:
                        # No producer id within the delivery timeout, say: what was not
                        # queued was never sent; a new instance carries on.
                        self.history.count("send_failed")
                        await self._settle(futures, None)
                        break
                    await self._settle(futures, None)
            finally:
                await self._close(producer)

    async def _settle(self, futures: list[tuple[bytes, asyncio.Future[Any]]],
                      named: tuple[str, int] | None,
                      identity: tuple[int, int] | None = None) -> bool:
        """Records each send's outcome; False once the producer was fenced."""
        fenced = False
        for value, future in futures:
            try:
                meta = await future
            except ProducerFencedError:
                fenced = True
                self.history.maybe(value)
            except OdradekError:
                self.history.maybe(value)
                self.history.count("send_failed")
            else:
                self.history.ack(value, (meta.topic, meta.partition), meta.offset, named,
                                 identity)
        return not fenced

    async def _close(self, producer: Producer) -> None:
        with contextlib.suppress(OdradekError, TimeoutError):
            await asyncio.wait_for(producer.close(), 30)

    async def _named_producer(self, name: str) -> None:
        """Instances of one producer_name; each new one fences the one before, which goes
        on sending for a while (a zombie) to show that none of its writes land after."""
        seq = 0
        instance = 0
        old: tuple[Producer, int] | None = None
        assert self.stopping is not None
        while not self.stopping.is_set():
            instance += 1
            producer = Producer(self.bootstrap, acks="quorum", producer_name=name,
                                linger_ms=2, delivery_timeout_ms=30_000,
                                request_timeout_ms=5_000)
            live = [(producer, instance)] + ([old] if old else [])
            for _ in range(self.rng.randrange(20, 200)):
                if self.stopping.is_set():
                    break
                for p, number in list(live):
                    futures = []
                    for _ in range(4):
                        value = b"%s-%d:%d" % (name.encode(), number, seq)
                        seq += 1
                        try:
                            futures.append((value, await p.send(
                                TOPIC, value, partition=seq % PARTITIONS)))
                        except OdradekError:
                            break  # fenced, or no producer id yet: the rest next round
                    if not await self._settle(futures, (name, number), p.producer_id):
                        live.remove((p, number))
                        self.history.count("fenced")
            if old is not None:
                await self._close(old[0])
            old = (producer, instance)
        if old is not None:
            await self._close(old[0])

    async def _tail(self, tp: TP) -> None:
        """Reads one partition from offset 0 on, never resetting its position: an out of
        range answer is a violation (retention is off, so the log start stays at 0)."""
        consumer = Consumer(self.bootstrap, auto_offset_reset="none", fetch_max_wait_ms=200,
                            request_timeout_ms=5_000)
        reader = f"tail-{tp[1]}"
        assert self.stopping is not None
        try:
            consumer.assign([tp])
            consumer.seek(tp, 0)
            while not self.stopping.is_set():
                try:
                    records = await consumer.poll(timeout_ms=500)
                except OffsetOutOfRangeError as exc:
                    self.history.violation("OUT_OF_RANGE", f"{reader} at "
                                           f"{self.tail_positions.get(tp, 0)}: {exc}")
                    return
                except CorruptRecordError as exc:
                    self.history.violation("CORRUPT_RECORD_SERVED", f"{reader}: {exc}")
                    return
                except OdradekError:
                    self.history.count("poll_failed")
                    await self._pause(0.2)
                    continue
                self.history.read(reader, tp, [(r.offset, r.value or b"") for r in records],
                                  group=False)
                if records:
                    self.tail_positions[tp] = records[-1].offset + 1
                with contextlib.suppress(OdradekError):
                    self.tail_positions[tp] = max(self.tail_positions.get(tp, 0),
                                                  await consumer.position(tp))
        finally:
            with contextlib.suppress(OdradekError, TimeoutError):
                await asyncio.wait_for(consumer.close(), 15)

    async def _group(self) -> None:
        """Two to three members of one group; one leaves and another joins now and then."""
        members: list[asyncio.Task[None]] = []
        stops: list[asyncio.Event] = []
        number = 0
        assert self.stopping is not None
        while not self.stopping.is_set():
            while len(members) < 3:
                number += 1
                stop = asyncio.Event()
                stops.append(stop)
                members.append(asyncio.ensure_future(self._member(f"m{number}", stop)))
            if await self._pause(self.rng.uniform(3, 10)):
                break
            victim = self.rng.randrange(len(members))
            stops.pop(victim).set()
            await asyncio.wait({members.pop(victim)}, timeout=30)
        for stop in stops:
            stop.set()
        if members:
            await asyncio.wait(members, timeout=30)

    async def _member(self, name: str, stop: asyncio.Event) -> None:
        consumer = Consumer(self.bootstrap, group_id="chaos-group", auto_offset_reset="earliest",
                            enable_auto_commit=False, fetch_max_wait_ms=200,
                            session_timeout_ms=6_000, request_timeout_ms=5_000)
        try:
            consumer.subscribe([TOPIC])
            while not stop.is_set():
                try:
                    records = await consumer.poll(timeout_ms=500)
                except CorruptRecordError as exc:
                    self.history.violation("CORRUPT_RECORD_SERVED", f"{name}: {exc}")
                    return
                except OdradekError:
                    self.history.count("poll_failed")
                    await asyncio.sleep(0.2)
                    continue
                reader = f"{name}-g{consumer.generation}"
                by_tp: dict[TP, list[tuple[int, bytes]]] = {}
                for r in records:
                    by_tp.setdefault((r.topic, r.partition), []).append(
                        (r.offset, r.value or b""))
                for tp, got in by_tp.items():
                    self.history.read(reader, tp, got, group=True)
                if records:
                    try:
                        await consumer.commit()
                        self.history.count("commits")
                    except OdradekError:
                        self.history.count("commit_failed")
        finally:
            with contextlib.suppress(OdradekError, TimeoutError):
                await asyncio.wait_for(consumer.close(), 15)

    async def _admin(self) -> None:
        """Reassigns a partition to three random brokers now and then, and drains the
        last broker once (it then gets no replicas)."""
        assert self.stopping is not None
        async with Admin(self.bootstrap, request_timeout_ms=5_000) as admin:
            while not await self._pause(self.rng.uniform(5, 15)):
                candidates = [b for b in self.brokers if b != self.drained]
                try:
                    if self.drained is None and len(self.brokers) > 3 and self.rng.random() < .2:
                        self.drained = self.brokers[-1]
                        await admin.drain_broker(self.drained)
                        self.log(f"admin: drain broker {self.drained}")
                    elif len(candidates) >= 3:
                        partition = self.rng.randrange(PARTITIONS)
                        target = self.rng.sample(candidates, 3)
                        await admin.reassign_partition(TOPIC, partition, target)
                        self.log(f"admin: reassign {TOPIC}-{partition} to {target}")
                    self.history.count("admin_changes")
                except OdradekError as exc:
                    self.history.count("admin_failed")
                    self.log(f"admin: failed: {exc}")
