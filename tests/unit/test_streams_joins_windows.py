"""Joins (table-table, windowed stream-stream, global table), hopping and session windows
and suppression, each against a simple model (hypothesis), through the in-memory Driver."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from odradek.streams import (
    INT,
    JSON,
    STR,
    App,
    Driver,
    HoppingWindows,
    JoinWindows,
    SessionWindows,
    TopologyError,
    TumblingWindows,
    Windowed,
)
from odradek.streams.windows import decode_ts

keys = st.sampled_from(["a", "b", "ab"])  # "a" is a prefix of "ab": stores must not mix them


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.booleans(), keys, st.integers(0, 4)), max_size=30),
       st.sampled_from(["inner", "left", "outer"]), st.integers(1, 3))
def test_table_table_join_is_the_join_of_the_two_dicts(
        updates: list[tuple[bool, str, int]], how: str, partitions: int) -> None:
    app = App("unused:1", "tt")
    left, right = app.table("l", STR, INT), app.table("r", STR, INT)
    left.join(right, lambda a, b: [a, b], "joined", how=how).to("out", STR, JSON)  # type: ignore[arg-type]
    driver = Driver(app.topology, partitions)
    lm: dict[str, int] = {}
    rm: dict[str, int] = {}
    result: dict[str, list[int | None]] = {}
    expected_updates: list[tuple[str, Any]] = []
    for is_left, key, value in updates:
        side = lm if is_left else rm
        if value == 0:  # a tombstone
            side.pop(key, None)
            driver.pipe("l" if is_left else "r", key, None)
        else:
            side[key] = value
            driver.pipe("l" if is_left else "r", key, value)
        a, b = lm.get(key), rm.get(key)
        present = {"inner": a is not None and b is not None, "left": a is not None,
                   "outer": a is not None or b is not None}[how]
        new = [a, b] if present else None
        if new != result.get(key):
            expected_updates.append((key, new))
            if new is None:
                del result[key]
            else:
                result[key] = new
    assert driver.store("joined") == result
    # per key, in order: exactly the changes of the result (None when a key leaves it)
    got = driver.read("out", STR, JSON)
    for key in {k for _, k, _ in updates}:
        assert [v for k, v in got if k == key] == [v for k, v in expected_updates if k == key]


stream_records = st.lists(st.tuples(st.booleans(), keys, st.integers(0, 60)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(stream_records, st.integers(0, 10), st.integers(0, 10), st.integers(0, 10))
# The left record at 0 is as old as a buffered record may be (stream time 2 - retention 2)
# and the right one at 1 is not late: expiring at the boundary would lose their pair.
@example([(True, "a", 0), (True, "a", 2), (False, "a", 1)], 1, 1, 0)
def test_stream_stream_join_matches_every_pair_inside_the_window(
        records: list[tuple[bool, str, int]], before: int, after: int, grace: int) -> None:
    app = App("unused:1", "ss")
    clicks, views = app.stream("clicks", STR, INT), app.stream("views", STR, INT)
    windows = JoinWindows(before, after, grace)
    clicks.join(views, lambda c, v: [c, v], "cv", windows=windows).to("out", STR, JSON)
    driver = Driver(app.topology, 2)
    stream_time: dict[int, int] = {}  # per task (partition): the driver's partitioner
    accepted: list[tuple[bool, str, int, int]] = []
    late = 0
    for i, (is_left, key, ts) in enumerate(records):
        driver.pipe("clicks" if is_left else "views", key, i, ts)
        p = driver._partition(key.encode())
        stream_time[p] = max(stream_time.get(p, -1), ts)
        reach = after if is_left else before
        if ts + reach + grace < stream_time[p]:
            late += 1
        else:
            accepted.append((is_left, key, ts, i))
    pairs = Counter((k, (li, ri)) for lside, k, lt, li in accepted if lside
                    for rside, k2, rt, ri in accepted if not rside and k2 == k
                    and lt - before <= rt <= lt + after)
    outputs = driver.outputs["out"]
    assert Counter((k, tuple(v)) for k, v in driver.read("out", STR, JSON)) == pairs
    by_index = {i: ts for _, _, ts, i in accepted}
    for out in outputs:  # an output carries the later of its two records' timestamps
        li, ri = JSON.deserialize(out.value)
        assert out.timestamp == max(by_index[li], by_index[ri])
    assert sum(t.context.dropped_late for t in driver.tasks.values()) == late
    # Expiry keeps the buffers to what a record that is not late could still match.
    for task in driver.tasks.values():
        for name in ("cv-left-buffer", "cv-right-buffer"):
            for entry, _ in task.stores[name].range(b"t", b"u"):
                assert decode_ts(entry[1:9]) >= task.context.stream_time - windows.retention()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(keys, st.integers(0, 100)), max_size=40),
       st.integers(1, 20), st.integers(1, 20), st.integers(0, 15), st.booleans())
def test_time_windows_count_each_record_in_every_open_window_holding_it(
        records: list[tuple[str, int]], size: int, advance: int, grace: int,
        tumbling: bool) -> None:
    """Hopping windows, and tumbling ones (advance = size); a record is dropped from each
    of its windows that is closed (end + grace at or before the stream time)."""
    advance = size if tumbling else min(advance, size)
    windows = TumblingWindows(size, grace) if tumbling else HoppingWindows(size, advance, grace)
    app = App("unused:1", "win")
    app.stream("clicks", STR, STR).group_by_key().windowed_by(windows).count("per-window")
    driver = Driver(app.topology, 1)
    stream_time, late = -1, 0
    model: Counter[tuple[str, int]] = Counter()
    for key, ts in records:
        driver.pipe("clicks", key, "x", ts)
        stream_time = max(stream_time, ts)
        for start in range(0, ts + 1, advance):
            if start <= ts < start + size:
                if start + size + grace <= stream_time:
                    late += 1
                else:
                    model[(key, start)] += 1
    assert driver.store("per-window") == {
        Windowed(k, s, s + size): n for (k, s), n in model.items()}
    assert sum(t.context.dropped_late for t in driver.tasks.values()) == late


def sessions_of(points: list[tuple[int, int]], gap: int) -> list[tuple[int, int, int, int]]:
    """The model: sorted (ts, value) points cut where consecutive ones are over gap apart;
    each session as (start, end, count, sum)."""
    out: list[tuple[int, int, int, int]] = []
    for ts, v in sorted(points):
        if out and ts - out[-1][1] <= gap:
            s, _, n, total = out[-1]
            out[-1] = (s, ts, n + 1, total + v)
        else:
            out.append((ts, ts, 1, v))
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(keys, st.integers(0, 80), st.integers(-3, 3)), max_size=40),
       st.integers(0, 12), st.integers(0, 12))
def test_session_windows_are_the_gap_clusters_of_the_records_not_late(
        records: list[tuple[str, int, int]], gap: int, grace: int) -> None:
    app = App("unused:1", "sess")
    grouped = app.stream("clicks", STR, INT).group_by_key().windowed_by(
        SessionWindows(gap, grace))
    grouped.count("counts")
    grouped.reduce("sums", lambda a, b: a + b, INT)
    driver = Driver(app.topology, 1)
    stream_time, late = -1, 0
    accepted: dict[str, list[tuple[int, int]]] = {}
    for key, ts, v in records:
        driver.pipe("clicks", key, v, ts)
        stream_time = max(stream_time, ts)
        if ts + grace < stream_time:
            late += 1
        else:
            accepted.setdefault(key, []).append((ts, v))
    model = {k: sessions_of(points, gap) for k, points in accepted.items()}
    assert driver.store("counts") == {
        Windowed(k, s, e): n for k, ss in model.items() for s, e, n, _ in ss}
    assert driver.store("sums") == {
        Windowed(k, s, e): total for k, ss in model.items() for s, e, _, total in ss}
    # two aggregates saw each late record
    assert sum(t.context.dropped_late for t in driver.tasks.values()) == 2 * late


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(keys, st.integers(0, 100)), max_size=40), st.integers(1, 20),
       st.integers(0, 15), st.booleans())
# At stream time 1 (b's record) a's session [0, 0] (gap 1) can still take a's record at 1:
# it is not closed yet.
@example([("a", 0), ("b", 1), ("a", 1)], 1, 0, True)
def test_suppress_emits_each_closed_window_once_with_its_final_value(
        records: list[tuple[str, int]], size: int, grace: int, sessions: bool) -> None:
    app = App("unused:1", "sup")
    windows = SessionWindows(size, grace) if sessions else TumblingWindows(size, grace)
    (app.stream("clicks", STR, STR).group_by_key().windowed_by(windows).count("n")
        .suppress().to("final", value_serde=JSON))
    driver = Driver(app.topology, 1)
    for key, ts in records:
        driver.pipe("clicks", key, "x", ts)
    stream_time = max((ts for _, ts in records), default=-1)
    finals = driver.store("n")  # every window's aggregate as it stands at the end
    serde = driver.topology.stores["n"].key_serde
    emitted = [(serde.deserialize(o.key), JSON.deserialize(o.value))
               for o in driver.outputs["final"]]
    closed = {w: n for w, n in finals.items()
              if windows.close_time(w.start, w.end) <= stream_time}
    assert len(emitted) == len(closed)  # once each
    assert dict(emitted) == closed  # with the final value: nothing changed after it
    for out in driver.outputs["final"]:  # and only once closed, in stream time
        w = serde.deserialize(out.key)
        assert windows.close_time(w.start, w.end) <= out.timestamp


def test_suppressed_windows_close_on_records_that_never_reach_the_aggregate() -> None:
    app = App("unused:1", "sup2")
    (app.stream("clicks", STR, STR).filter(lambda _k, v: v != "tick").group_by_key()
        .windowed_by(TumblingWindows(10)).count("n").suppress().to("final", value_serde=JSON))
    driver = Driver(app.topology, 1)
    driver.pipe("clicks", "a", "x", 3)
    driver.pipe("clicks", "a", "x", 5)
    assert driver.outputs["final"] == []  # the window [0, 10) is open
    driver.pipe("clicks", "a", "tick", 10)  # filtered out, but stream time is now 10
    serde = driver.topology.stores["n"].key_serde
    assert [(serde.deserialize(o.key), JSON.deserialize(o.value))
            for o in driver.outputs["final"]] == [(Windowed("a", 0, 10), 2)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), keys, st.integers(0, 5)), max_size=30),
       st.integers(1, 3))
def test_global_table_join_looks_up_the_key_the_record_names(
        events: list[tuple[bool, str, int]], partitions: int) -> None:
    app = App("unused:1", "gt")
    products = app.global_table("products", STR, INT)
    # orders keyed by order id name their product in the value: no repartition needed
    (app.stream("orders", STR, STR)
        .join(products, lambda product, price: [product, price], key_fn=lambda _k, v: v)
        .to("priced", STR, JSON))
    driver = Driver(app.topology, partitions)
    model: dict[str, int] = {}
    expected = []
    for i, (is_product, key, value) in enumerate(events):
        if is_product:
            driver.pipe("products", key, None if value == 0 else value)
            if value == 0:
                model.pop(key, None)
            else:
                model[key] = value
        else:
            driver.pipe("orders", f"o{i}", key)
            if key in model:
                expected.append((f"o{i}", [key, model[key]]))
    assert sorted(driver.read("priced", STR, JSON)) == sorted(expected)
    assert not app.topology.repartitions and "products" not in app.topology.sources


def test_dsl_errors() -> None:
    app = App("unused:1", "e")
    a, b = app.stream("a", STR, INT), app.stream("b", STR, INT)
    with pytest.raises(TopologyError, match="JoinWindows"):
        a.join(b, lambda x, y: x)
    with pytest.raises(TopologyError, match="inner only"):
        a.join(b, lambda x, y: x, "j", left=True, windows=JoinWindows.of(5))
    with pytest.raises(TopologyError, match="merge="):
        a.group_by_key().windowed_by(SessionWindows(5)).aggregate("s", list, lambda k, v, acc: acc)
    with pytest.raises(TopologyError, match="windowed table"):
        a.group_by_key().count("c").suppress()
    app.global_table("g", STR, STR)
    with pytest.raises(TopologyError, match="used already"):
        app.global_table("g", STR, STR)
    # keys changed on both sides of a stream-stream join: both are repartitioned
    a.map(lambda k, v: (str(v), v)).join(b.map(lambda k, v: (str(v), v)), lambda x, y: x,
                                         "re", windows=JoinWindows.of(1))
    assert {"e-re-left-repartition", "e-re-right-repartition"} <= set(app.topology.repartitions)
    with pytest.raises(ValueError):
        HoppingWindows(10, 11)
