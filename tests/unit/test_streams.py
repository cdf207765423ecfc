"""odradek.streams without a broker: each operator's semantics against a simple model
(property tests), the DSL through the in-memory Driver, and the LMDB store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.streams import INT, JSON, STR, App, Driver, ProtobufSerde, TopologyError
from odradek.streams.stores import LmdbStore, MemoryStore

words = st.lists(st.sampled_from(["a", "b", "c", "dd", "e"]), max_size=8)


def wordcount(partitions: int) -> tuple[App, Driver]:
    app = App("unused:1", "wc")
    (app.stream("lines", STR, STR)
        .flat_map(lambda _k, line: [(w, 1) for w in line.split()], key_serde=STR,
                  value_serde=INT)
        .group_by_key().count("counts").to("out", STR, JSON))
    return app, Driver(app.topology, partitions)


@settings(max_examples=60, deadline=None)
@given(st.lists(words, max_size=20), st.integers(1, 4))
def test_count_equals_a_counter_and_each_update_is_the_running_count(
        lines: list[list[str]], partitions: int) -> None:
    app, driver = wordcount(partitions)
    model: Counter[str] = Counter()
    expected_updates = []
    for i, line in enumerate(lines):
        driver.pipe("lines", f"l{i}", " ".join(line), ts=i)
        for w in line:
            model[w] += 1
            expected_updates.append((w, model[w]))
    assert driver.store("counts") == dict(model)
    assert sorted(driver.read("out", STR, JSON)) == sorted(expected_updates)
    # The key changed (flat_map) before grouping: every word went through the repartition.
    assert len(driver.outputs["wc-counts-repartition"]) == sum(map(len, lines))
    assert "wc-counts-repartition" in app.topology.repartitions


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("xyz"), st.integers(-5, 5)), max_size=30))
def test_reduce_and_aggregate_match_a_fold(records: list[tuple[str, int]]) -> None:
    app = App("unused:1", "agg")
    grouped = app.stream("nums", STR, INT).group_by_key()
    grouped.reduce("maxes", max)
    app2 = App("unused:1", "agg2")
    app2.stream("nums", STR, INT).group_by(lambda k, v: v % 2, key_serde=INT).aggregate(
        "parity", lambda: [], lambda _k, v, acc: [*acc, v])
    d1, d2 = Driver(app.topology, 2), Driver(app2.topology, 3)
    for k, v in records:
        d1.pipe("nums", k, v)
        d2.pipe("nums", k, v)
    maxes: dict[str, int] = {}
    parity: dict[int, list[int]] = {}
    for k, v in records:
        maxes[k] = max(maxes.get(k, v), v)
        parity.setdefault(v % 2, []).append(v)
    assert d1.store("maxes") == maxes
    assert d2.store("parity") == parity


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from("pqr"), st.integers(0, 9)),
                max_size=30), st.booleans())
def test_stream_table_join_sees_the_table_as_it_stands(
        events: list[tuple[bool, str, int]], left: bool) -> None:
    app = App("unused:1", "join")
    table = app.table("customers", STR, JSON)
    orders = app.stream("orders", STR, JSON)
    joined = (orders.left_join(table, lambda o, c: [o, c]) if left
              else orders.join(table, lambda o, c: [o, c]))
    joined.to("enriched", STR, JSON)
    driver = Driver(app.topology, 2)
    model: dict[str, int | None] = {}
    expected = []
    for is_table, key, value in events:
        if is_table:
            # 0 is a tombstone: the customer is deleted
            driver.pipe("customers", key, None if value == 0 else value)
            model[key] = None if value == 0 else value
        else:
            driver.pipe("orders", key, value)
            row = model.get(key)
            if row is not None or left:
                expected.append((key, [value, row]))
    assert driver.read("enriched", STR, JSON) == expected


def test_branch_filter_map() -> None:
    app = App("unused:1", "br")
    small, big = app.stream("n", STR, INT).filter(lambda _k, v: v >= 0).branch(
        lambda _k, v: v < 10, lambda _k, v: True)
    small.map_values(lambda v: v * 2).to("small")
    big.map(lambda k, v: (k.upper(), str(v)), value_serde=STR).to("big")
    driver = Driver(app.topology)
    for i, v in enumerate([-1, 3, 12, 9, 100]):
        driver.pipe("n", f"k{i}", v)
    assert driver.read("small", STR, INT) == [("k1", 6), ("k3", 18)]
    assert driver.read("big", STR, STR) == [("K2", "12"), ("K4", "100")]


def test_topology_errors() -> None:
    app = App("unused:1", "e")
    app.stream("a")
    with pytest.raises(TopologyError, match="already a source"):
        app.stream("a")
    table = app.table("t", STR, STR)
    keyed = app.stream("b", STR, STR).map(lambda k, v: (v, k))
    with pytest.raises(TopologyError, match="give it a name"):
        keyed.join(table, lambda a, b: a)
    keyed.join(table, lambda a, b: a, name="rekey")
    assert "e-rekey-join-repartition" in app.topology.repartitions
    # the join puts the repartition topic and the table's topic in one task group
    assert app.topology.group_of("e-rekey-join-repartition") == app.topology.group_of("t")


def test_protobuf_values_through_an_aggregate() -> None:
    from google.protobuf.struct_pb2 import Struct

    serde = ProtobufSerde(Struct)
    app = App("unused:1", "pb")

    def add(_k: str, v: Struct, total: Struct) -> Struct:
        out = Struct()
        out.update({"n": total["n"] + v["n"], "last": v["tag"]})
        return out

    def zero() -> Struct:
        start = Struct()
        start.update({"n": 0})
        return start

    (app.stream("in", STR, serde).group_by_key().aggregate("sums", zero, add, serde)
        .to("out", STR, serde))
    driver = Driver(app.topology, 2)
    for i in range(5):
        record = Struct()
        record.update({"n": i, "tag": f"t{i}"})
        driver.pipe("in", "k" if i % 2 else "j", record)
    assert {k: dict(v) for k, v in driver.store("sums").items()} == {
        "j": {"n": 6, "last": "t4"}, "k": {"n": 4, "last": "t3"}}
    # deterministic bytes: the same map fields in another insertion order, equal bytes
    a, b = Struct(), Struct()
    a.update({"x": 1, "y": 2})
    b.update({"y": 2, "x": 1})
    assert serde.serialize(a) == serde.serialize(b)
    assert serde.serialize(None) is None and serde.deserialize(None) is None


@pytest.mark.parametrize("kind", ["memory", "lmdb"])
def test_stores_get_put_delete_range(kind: str, tmp_path: Path) -> None:
    store = MemoryStore() if kind == "memory" else LmdbStore(tmp_path / "s")
    for k in [b"b", b"a", b"d", b"c"]:
        store.put(k, k * 2)
    store.delete(b"c")
    assert store.get(b"a") == b"aa" and store.get(b"c") is None
    assert list(store.range(b"b", b"d")) == [(b"b", b"bb")]
    store.commit()
    assert [k for k, _ in store.range()] == [b"a", b"b", b"d"]
    assert store.size() == 3
    store.close()
    if kind == "lmdb":
        again = LmdbStore(tmp_path / "s")
        assert again.get(b"d") == b"dd"
        again.close()


def test_streams_imports_only_the_client_and_records() -> None:
    import ast

    root = Path(__file__).resolve().parents[2] / "odradek" / "streams"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.startswith("odradek."):
                    # v1: the proto; security: the TLS options the client uses too
                    allowed = {"client", "records", "security", "streams", "v1"}
                    assert name.split(".")[1] in allowed, (path, name)


def test_standby_placement_covers_every_task_on_other_live_instances() -> None:
    import time

    from odradek.streams.registry import InstanceInfo, owners, standby_tasks, task_name

    now = int(time.time() * 1000)
    tasks = [(1, p) for p in range(6)]
    ids = ["a", "b", "c"]
    instances = {i: InstanceInfo(i, "", {task_name(t): 0 for t in tasks[k::3]}, {}, now)
                 for k, i in enumerate(ids)}
    for replicas in (1, 2):
        placed = {i: standby_tasks(i, instances, tasks, replicas) for i in ids}
        for t in tasks:
            holders = [i for i in ids if t in placed[i]]
            assert len(holders) == replicas, (t, holders)
            assert owners(instances)[t].instance_id not in holders
    # a stale entry (a crashed instance) owns nothing and keeps no standby
    instances["c"].updated_ms = now - 60_000
    assert all(o.instance_id != "c" for o in owners(instances).values())
    assert all(t not in standby_tasks("a", instances, tasks, 1) for t in tasks[2::3])
    assert standby_tasks("a", instances, tasks, 1) == set(tasks[1::3])


def test_restore_progress_series_of_a_store_being_restored() -> None:
    from odradek.streams.metrics import Snapshot, _restore_families
    from odradek.streams.runtime import RestoreProgress

    snap = Snapshot([], {}, [RestoreProgress((1, 2), "counts", 100, 175, 200)], 75, 0, 1.5)
    got = {(s.name, s.labels.get("store")): s.value
           for family in _restore_families({"application": "a", "instance_id": "i"}, snap)
           for s in family.samples}
    assert got == {("odradek_streams_restore_remaining_offsets", "counts"): 25,
                   ("odradek_streams_restore_progress_ratio", "counts"): 0.75,
                   ("odradek_streams_restored_records_total", None): 75,
                   ("odradek_streams_restore_seconds_total", None): 1.5}
