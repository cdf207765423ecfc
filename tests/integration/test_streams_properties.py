"""Each operator of odradek.streams against a simple model (hypothesis), through a real
broker: the records produced to real topics, processed by an App's consumer group, the
output topics read back and compared with what the model says. Aggregations (count,
reduce, aggregate through a repartition topic), the stream-table join (inner, left), the
table-table join (inner, left, outer), the windowed stream-stream join, tumbling, hopping
and session windows with late records and grace, and suppression.

One broker for the module and one app per test, running across that test's examples on an
event loop in a thread (starting an app per example would cost seconds each); examples
keep apart by a key prefix of their own and, where stream time matters, by event times
SPAN_MS after the previous example's. Records that must be processed in a known order
across topics (a table update before an order) are produced in phases: each phase is
processed and committed before the next is sent."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from odradek.client import Admin, Consumer, ConsumerRecord, Producer, TopicPartition
from odradek.streams import (
    INT,
    JSON,
    STR,
    App,
    HoppingWindows,
    JoinWindows,
    SessionWindows,
    TumblingWindows,
    Windowed,
    WindowedSerde,
)
from tests.brokers import BrokerProcess
from tests.integration.test_streams import until

T = TypeVar("T")
SPAN_MS = 1_000_000  # event times of one example: base + 0..SPAN_MS
# Recent timestamps, so that no retention by time ever finds the records old.
BASE_MS = (int(time.time() * 1000) // SPAN_MS) * SPAN_MS
EXAMPLES = settings(max_examples=15, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
keys = st.sampled_from(["a", "b", "ab"])  # "a" is a prefix of "ab": stores must not mix them


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path_factory.mktemp("streams-props") / "b0").start()
    try:
        yield proc
    finally:
        proc.stop()


class Running:
    """An app started on an event loop of its own thread, fed by one producer; each
    example runs its coroutine there with `call`."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.producer: Producer | None = None
        self.sent = 0  # records produced, so far, that the app must commit
        self._examples = itertools.count()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> Running:
        self._thread.start()

        async def start() -> None:
            self.producer = Producer(self.app.bootstrap, linger_ms=1)
            await self.app.start()
        self.call(start())
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            try:
                await self.app.stop()
            finally:
                if self.producer is not None:
                    await self.producer.close()
        try:
            self.call(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()

    def example(self) -> tuple[str, int]:
        """A key prefix and a base event time no other example of this test uses."""
        n = next(self._examples)
        return f"e{n}.", BASE_MS + (n + 1) * SPAN_MS

    async def send(self, records: list[tuple[str, str, bytes | None, int]],
                   processed_per_record: int = 1) -> None:
        """Produces (topic, key, value, timestamp) records in order and waits until the app
        has committed every input record so far (processed_per_record counts a record's
        trips through repartition topics too)."""
        assert self.producer is not None
        futures = [await self.producer.send(topic, value, key.encode(), timestamp_ms=ts)
                   for topic, key, value, ts in records]
        for fut in futures:
            await fut
        self.sent += len(records) * processed_per_record
        runtime = self.app.runtime
        assert runtime is not None
        await until(f"the app committing {self.sent} input records",
                    lambda: runtime.committed >= self.sent, 60)

    async def read(self, topic: str, prefix: str) -> list[ConsumerRecord]:
        """The records of topic up to its end now whose keys start with prefix, in offset
        order per partition."""
        async with Consumer(self.app.bootstrap, auto_offset_reset="earliest") as c:
            tps = await c.partitions_for(topic)
            c.assign(tps)
            ends = await c.end_offsets(tps)
            out: list[ConsumerRecord] = []
            deadline = time.monotonic() + 30
            while any([await c.position(tp) < ends[TopicPartition(*tp)] for tp in tps]):
                assert time.monotonic() < deadline, f"reading {topic} took over 30 s"
                out.extend(await c.poll(200))
        return [r for r in out if r.key is not None and r.key.startswith(prefix.encode())]

    async def dropped_late(self) -> int:
        return sum(m.dropped_late for m in await self.app.metrics())


def by_key(records: list[ConsumerRecord], decode: Callable[[bytes | None], Any] = JSON.deserialize
           ) -> dict[str, list[Any]]:
    """Per key (its prefix cut), the values in the order they were written."""
    out: dict[str, list[Any]] = {}
    for r in records:
        assert r.key is not None
        out.setdefault(r.key.decode().split(".", 1)[1], []).append(decode(r.value))
    return out


async def make_topics(bootstrap: str, topics: dict[str, int], compacted: tuple[str, ...] = ()
                      ) -> None:
    async with Admin(bootstrap) as admin:
        for topic, partitions in topics.items():
            configs = {"cleanup.policy": "compact"} if topic in compacted else {}
            await admin.create_topic(topic, partitions, configs=configs)


def start(broker: BrokerProcess, tmp_path: Path, app_id: str, topics: dict[str, int],
          compacted: tuple[str, ...] = ()) -> App:
    asyncio.run(make_topics(broker.address, topics, compacted))
    return App(broker.address, app_id, state_dir=tmp_path)


# -- aggregations ---------------------------------------------------------------------------

def test_count_reduce_and_aggregate_equal_a_fold(broker: BrokerProcess, tmp_path: Path) -> None:
    app = start(broker, tmp_path, "p-agg", {"p-nums": 2})
    nums = app.stream("p-nums", STR, INT)
    nums.group_by_key().count("p-count").to("p-counts", STR, JSON)
    nums.group_by_key().reduce("p-max", max).to("p-maxes", STR, JSON)
    # a new key (the value's residue): every record goes through the repartition topic
    (nums.group_by(lambda k, v: f"{k.split('.')[0]}.r{v % 3}", key_serde=STR)
        .aggregate("p-residues", list, lambda _k, v, acc: [*acc, v]).to("p-lists", STR, JSON))
    with Running(app) as running:
        @EXAMPLES
        @given(st.lists(st.tuples(st.sampled_from(["x", "y", "z"]), st.integers(-5, 5)),
                        min_size=1, max_size=25))
        def check(records: list[tuple[str, int]]) -> None:
            prefix, base = running.example()
            counts: dict[str, list[int]] = {}
            maxes: dict[str, list[int]] = {}
            residues: dict[str, list[int]] = {}
            for k, v in records:
                held = maxes.setdefault(k, [])
                held.append(max(held[-1], v) if held else v)
                counts.setdefault(k, []).append(len(held))
                residues.setdefault(f"r{v % 3}", []).append(v)

            async def go() -> None:
                await running.send([("p-nums", prefix + k, INT.serialize(v), base)
                                    for k, v in records], processed_per_record=2)
                # per key, every update in order: the running count and maximum
                assert by_key(await running.read("p-counts", prefix)) == counts
                assert by_key(await running.read("p-maxes", prefix)) == maxes
                # a residue's records come from both input partitions, in either order
                lists = by_key(await running.read("p-lists", prefix))
                assert {k: len(v) for k, v in lists.items()} == {
                    k: len(v) for k, v in residues.items()}
                assert {k: sorted(v[-1]) for k, v in lists.items()} == {
                    k: sorted(v) for k, v in residues.items()}
            running.call(go())
        check()


# -- joins ----------------------------------------------------------------------------------

phases = st.lists(st.tuples(st.booleans(), st.lists(st.tuples(keys, st.integers(0, 5)),
                                                    min_size=1, max_size=6)),
                  min_size=1, max_size=3)


def test_stream_table_join_sees_the_table_as_it_stands(
        broker: BrokerProcess, tmp_path: Path) -> None:
    app = start(broker, tmp_path, "p-st", {"p-customers": 2, "p-orders": 2}, ("p-customers",))
    customers = app.table("p-customers", STR, INT)
    orders = app.stream("p-orders", STR, INT)
    orders.join(customers, lambda o, c: [o, c]).to("p-enriched", STR, JSON)
    orders.left_join(customers, lambda o, c: [o, c]).to("p-enriched-left", STR, JSON)
    with Running(app) as running:
        @EXAMPLES
        @given(phases)
        def check(steps: list[tuple[bool, list[tuple[str, int]]]]) -> None:
            prefix, base = running.example()
            table: dict[str, int] = {}
            inner: dict[str, list[list[int | None]]] = {}
            left: dict[str, list[list[int | None]]] = {}
            batches = []
            for is_table, records in steps:
                topic = "p-customers" if is_table else "p-orders"
                batches.append([(topic, prefix + k, None if is_table and v == 0
                                 else INT.serialize(v), base) for k, v in records])
                for k, v in records:
                    if is_table and v == 0:  # a tombstone: the customer goes
                        table.pop(k, None)
                    elif is_table:
                        table[k] = v
                    else:
                        left.setdefault(k, []).append([v, table.get(k)])
                        if k in table:
                            inner.setdefault(k, []).append([v, table[k]])

            async def go() -> None:
                for batch in batches:
                    await running.send(batch)
                assert by_key(await running.read("p-enriched", prefix)) == inner
                assert by_key(await running.read("p-enriched-left", prefix)) == left
            running.call(go())
        check()


def test_table_table_joins_are_the_joins_of_the_two_dicts(
        broker: BrokerProcess, tmp_path: Path) -> None:
    app = start(broker, tmp_path, "p-tt", {"p-left": 2, "p-right": 2}, ("p-left", "p-right"))
    lt, rt = app.table("p-left", STR, INT), app.table("p-right", STR, INT)
    for how in ("inner", "left", "outer"):
        lt.join(rt, lambda a, b: [a, b], f"p-tt-{how}", how=how).to(f"p-joined-{how}", STR, JSON)
    with Running(app) as running:
        @EXAMPLES
        @given(phases)
        def check(steps: list[tuple[bool, list[tuple[str, int]]]]) -> None:
            prefix, base = running.example()
            sides: tuple[dict[str, int], dict[str, int]] = ({}, {})
            result: dict[str, dict[str, Any]] = {h: {} for h in ("inner", "left", "outer")}
            updates: dict[str, dict[str, list[Any]]] = {h: {} for h in result}
            batches = []
            for is_left, records in steps:
                topic = "p-left" if is_left else "p-right"
                batches.append([(topic, prefix + k, None if v == 0 else INT.serialize(v), base)
                                for k, v in records])
                for k, v in records:
                    side = sides[0] if is_left else sides[1]
                    if v == 0:
                        side.pop(k, None)
                    else:
                        side[k] = v
                    a, b = sides[0].get(k), sides[1].get(k)
                    present = {"inner": a is not None and b is not None,
                               "left": a is not None, "outer": a is not None or b is not None}
                    for how, there in present.items():
                        new = [a, b] if there else None
                        if new != result[how].get(k):  # only changes are forwarded
                            updates[how].setdefault(k, []).append(new)
                            result[how][k] = new

            async def go() -> None:
                for batch in batches:
                    await running.send(batch)
                for how in result:
                    assert by_key(await running.read(f"p-joined-{how}", prefix)) == \
                        updates[how], how
            running.call(go())
        check()


def test_windowed_stream_stream_join_matches_every_pair_not_late(
        broker: BrokerProcess, tmp_path: Path) -> None:
    # one partition each: one task, whose stream time the model follows
    app = start(broker, tmp_path, "p-ss", {"p-clicks": 1, "p-views": 1})
    windows = JoinWindows(before_ms=3, after_ms=5, grace_ms=4)
    clicks, views = app.stream("p-clicks", STR, INT), app.stream("p-views", STR, INT)
    clicks.join(views, lambda c, v: [c, v], "p-cv", windows=windows).to("p-pairs", STR, JSON)
    timed = st.lists(st.tuples(st.booleans(), st.lists(st.tuples(keys, st.integers(0, 40)),
                                                       min_size=1, max_size=8)),
                     min_size=1, max_size=3)
    with Running(app) as running:
        @EXAMPLES
        @given(timed)
        def check(steps: list[tuple[bool, list[tuple[str, int]]]]) -> None:
            prefix, base = running.example()
            stream_time = -1
            accepted: list[tuple[bool, str, int, int]] = []
            batches, late, i = [], 0, 0
            for is_left, records in steps:
                batch = []
                for k, t in records:
                    batch.append(("p-clicks" if is_left else "p-views", prefix + k,
                                  INT.serialize(i), base + t))
                    stream_time = max(stream_time, t)
                    reach = windows.after_ms if is_left else windows.before_ms
                    if t + reach + windows.grace_ms < stream_time:
                        late += 1
                    else:
                        accepted.append((is_left, k, t, i))
                    i += 1
                batches.append(batch)
            pairs = Counter((k, (li, ri)) for is_l, k, lt, li in accepted if is_l
                            for is_r, k2, rt, ri in accepted if not is_r and k2 == k
                            and lt - windows.before_ms <= rt <= lt + windows.after_ms)
            times = {i: t for _, _, t, i in accepted}

            async def go() -> None:
                dropped = await running.dropped_late()
                for batch in batches:
                    await running.send(batch)
                out = await running.read("p-pairs", prefix)
                got = Counter((r.key.decode().split(".", 1)[1],  # type: ignore[union-attr]
                               tuple(JSON.deserialize(r.value))) for r in out)
                assert got == pairs
                for r in out:  # an output carries the later of its two records' times
                    li, ri = JSON.deserialize(r.value)
                    assert r.timestamp == base + max(times[li], times[ri])
                assert await running.dropped_late() - dropped == late
            running.call(go())
        check()


# -- windows --------------------------------------------------------------------------------

def window_starts(ts: int, size: int, advance: int) -> list[int]:
    """Starts of the windows [k * advance, k * advance + size) holding ts (the model)."""
    first = ts - ts % advance
    return list(range(first, ts - size, -advance))


def time_window_model(records: list[tuple[str, int]], size: int, advance: int, grace: int
                      ) -> tuple[dict[tuple[str, int, int], int], int]:
    """Counts per (key, start, end) of the windows that took each record, and how many
    (record, window) pairs were late: the window closed (end + grace <= stream time)."""
    stream_time, late = -1, 0
    counts: Counter[tuple[str, int, int]] = Counter()
    for key, ts in records:
        stream_time = max(stream_time, ts)
        for s in window_starts(ts, size, advance):
            if s + size + grace <= stream_time:
                late += 1
            else:
                counts[(key, s, s + size)] += 1
    return dict(counts), late


def session_model(records: list[tuple[str, int]], gap: int, grace: int
                  ) -> tuple[dict[tuple[str, int, int], int], int]:
    """Per key, the records not late (ts + grace < stream time) sorted and cut where
    consecutive ones are over gap apart; counts per (key, start, end), and the late."""
    stream_time, late = -1, 0
    accepted: dict[str, list[int]] = {}
    for key, ts in records:
        stream_time = max(stream_time, ts)
        if ts + grace < stream_time:
            late += 1
        else:
            accepted.setdefault(key, []).append(ts)
    out: dict[tuple[str, int, int], int] = {}
    for key, times in accepted.items():
        sessions: list[list[int]] = []
        for ts in sorted(times):
            if sessions and ts - sessions[-1][1] <= gap:
                sessions[-1][1:] = [ts, sessions[-1][2] + 1]
            else:
                sessions.append([ts, ts, 1])
        out.update({(key, s, e): n for s, e, n in sessions})
    return out, late


def final_windows(records: list[ConsumerRecord], base: int) -> dict[tuple[str, int, int], int]:
    """The windowed table an output topic describes: the last value per window, a None
    value deleting it; times relative to base."""
    serde = WindowedSerde(STR)
    out: dict[tuple[str, int, int], int] = {}
    for r in records:
        w = serde.deserialize(r.key)
        assert isinstance(w, Windowed)
        key = (w.key.split(".", 1)[1], w.start - base, w.end - base)
        if r.value is None:
            out.pop(key, None)
        else:
            out[key] = JSON.deserialize(r.value)
    return out


timed_records = st.lists(st.tuples(keys, st.integers(0, 60)), min_size=1, max_size=30)


def test_tumbling_hopping_and_session_windows_with_late_records_and_grace(
        broker: BrokerProcess, tmp_path: Path) -> None:
    app = start(broker, tmp_path, "p-win", {"p-events": 1})
    tumbling, hopping = TumblingWindows(10, grace_ms=5), HoppingWindows(10, 4, grace_ms=3)
    sessions = SessionWindows(gap_ms=5, grace_ms=4)
    grouped = app.stream("p-events", STR, STR).group_by_key()
    grouped.windowed_by(tumbling).count("p-tumbling").to("p-tumbling-out", value_serde=JSON)
    grouped.windowed_by(hopping).count("p-hopping").to("p-hopping-out", value_serde=JSON)
    grouped.windowed_by(sessions).count("p-sessions").to("p-sessions-out", value_serde=JSON)
    with Running(app) as running:
        @EXAMPLES
        @given(timed_records)
        def check(records: list[tuple[str, int]]) -> None:
            # The base is a multiple of every size and advance, so windows line up with it
            # (a record near it is also in hopping windows that start before it).
            prefix, base = running.example()
            t_counts, t_late = time_window_model(records, 10, 10, 5)
            h_counts, h_late = time_window_model(records, 10, 4, 3)
            s_counts, s_late = session_model(records, 5, 4)

            async def go() -> None:
                dropped = await running.dropped_late()
                await running.send([("p-events", prefix + k, b"x", base + t)
                                    for k, t in records])
                got = {name: final_windows(await running.read(f"p-{name}-out", prefix), base)
                       for name in ("tumbling", "hopping", "sessions")}
                assert got == {"tumbling": t_counts, "hopping": h_counts,
                               "sessions": s_counts}
                assert await running.dropped_late() - dropped == t_late + h_late + s_late
            running.call(go())
        check()


def test_suppression_emits_each_closed_window_once_with_its_final_value(
        broker: BrokerProcess, tmp_path: Path) -> None:
    app = start(broker, tmp_path, "p-sup", {"p-ticks": 1})
    tumbling, sessions = TumblingWindows(10, grace_ms=3), SessionWindows(gap_ms=4, grace_ms=2)
    grouped = app.stream("p-ticks", STR, STR).group_by_key()
    (grouped.windowed_by(tumbling).count("p-sup-t").suppress()
        .to("p-final-t", value_serde=JSON))
    (grouped.windowed_by(sessions).count("p-sup-s").suppress()
        .to("p-final-s", value_serde=JSON))
    with Running(app) as running:
        @EXAMPLES
        @given(timed_records)
        # Windows that close exactly at the stream time: [0, 10) at 10 + grace 3 and the
        # session [0, 0] at 0 + gap 4 + grace 2 + 1.
        @example([("a", 0), ("a", 13)])
        @example([("b", 0), ("b", 7)])
        def check(records: list[tuple[str, int]]) -> None:
            prefix, base = running.example()
            stream_time = max(t for _, t in records)
            t_all, _ = time_window_model(records, 10, 10, 3)
            s_all, _ = session_model(records, 4, 2)
            # closed by the example's own stream time (the next example closes the rest)
            closes = {"t": {w: w[2] + 3 for w in t_all}, "s": {w: w[2] + 4 + 2 + 1 for w in s_all}}
            want = {"t": {w: n for w, n in t_all.items() if closes["t"][w] <= stream_time},
                    "s": {w: n for w, n in s_all.items() if closes["s"][w] <= stream_time}}

            async def go() -> None:
                await running.send([("p-ticks", prefix + k, b"x", base + t)
                                    for k, t in records])
                for name in ("t", "s"):
                    out = await running.read(f"p-final-{name}", prefix)
                    got = final_windows(out, base)
                    assert len(out) == len(got), name  # each window once, never deleted
                    assert got == want[name], name
                    for r, w in zip(out, got, strict=True):  # never before it closed
                        assert r.timestamp - base >= closes[name][w], (name, w)
            running.call(go())
        check()
