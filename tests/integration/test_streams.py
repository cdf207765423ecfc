"""odradek.streams against a real broker process: word count through a repartition topic
into a store and an output topic, a stream-table join, and a restart that restores the
store from its changelog and counts on; a table-table join and a global-table join in one
app, and a windowed stream-stream join next to session windows suppressed until they
close, all on the records' own timestamps."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import pytest

from odradek.client import Admin, Consumer, Producer, TopicPartition
from odradek.security.certs import make_pki
from odradek.security.tls import ClientTLS, ServerTLS
from odradek.streams import (
    INT,
    JSON,
    STR,
    App,
    JoinWindows,
    NotLocalError,
    SessionWindows,
    TopologyError,
    WindowedSerde,
)
from odradek.streams.query import QueryClient
from odradek.streams.registry import parse_task
from odradek.streams.task import SOURCE_HEADER, encode_source
from tests.brokers import BrokerProcess, client_tls, free_port, tls_args


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path_factory.mktemp("streams") / "b0").start()
    try:
        yield proc
    finally:
        proc.stop()


async def until(what: str, check: Callable[[], Awaitable[bool] | bool],
                timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of topic up to its end now, in offset order per partition."""
    async with Consumer(bootstrap, auto_offset_reset="earliest") as c:
        tps = await c.partitions_for(topic)
        c.assign(tps)
        ends = await c.end_offsets(tps)
        out = []
        deadline = time.monotonic() + 30
        while any([await c.position(tp) < ends[TopicPartition(*tp)] for tp in tps]):
            assert time.monotonic() < deadline, f"reading {topic} took over 30 s"
            out.extend((r.key, r.value) for r in await c.poll(200))
        return out


def wordcount_app(bootstrap: str, state_dir: Path) -> App:
    app = App(bootstrap, "wc", state_dir=state_dir)
    (app.stream("lines", STR, STR)
        .flat_map(lambda _k, line: [(w, w) for w in line.split()], key_serde=STR)
        .group_by_key().count("counts").to("word-counts", STR, JSON))
    return app


async def produce(bootstrap: str, topic: str, pairs: list[tuple[str, str]]) -> None:
    async with Producer(bootstrap) as producer:
        for k, v in pairs:
            await producer.send(topic, v, key=k)
        await producer.flush()


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 100))  # type: ignore[arg-type]


def test_word_count_then_restart_restores_the_store_from_its_changelog(
        broker: BrokerProcess, tmp_path: Path) -> None:
    async def go() -> None:
        async with Admin(broker.address) as admin:
            await admin.create_topic("lines", 3)
        first = [(f"l{i}", f"the cat {'sat' if i % 2 else 'ran'} the") for i in range(30)]
        await produce(broker.address, "lines", first)
        expected = Counter(w for _, line in first for w in line.split())
        app = wordcount_app(broker.address, tmp_path / "run1")
        async with app:
            view = app.store("counts")
            await until("counts in the store", lambda: view.all() == dict(expected))
            assert view.get("the") == 60
            assert view.get("nope") is None
            assert list(view.range("ca", "r")) == [("cat", 30)]
            words = sum(expected.values())

            async def settled() -> bool:
                got = await app.metrics()
                return sum(m.records_in for m in got) == len(first) + words and all(
                    m.lag == 0 for m in got)
            await until("the metrics of every record", settled)
            metrics = await app.metrics()
            # 3 partitions of lines, 3 of the repartition topic: a task per partition
            assert len(metrics) == 6
            counting = [m for m in metrics if "counts" in m.store_keys]
            assert sum(m.store_keys["counts"] for m in counting) == len(expected)
            # per word: one count to word-counts and its changelog record; per line, its
            # words to the repartition topic
            assert sum(m.records_out for m in metrics) == 3 * words
        # the output topic: per word, the running counts, the last one the total
        out = await read_all(broker.address, "word-counts")
        last = {k.decode(): JSON.deserialize(v) for k, v in out if k is not None}
        assert last == dict(expected)

        # A second instance with empty local state: it must rebuild from the changelog.
        second = [(f"m{i}", "the dog") for i in range(10)]
        await produce(broker.address, "lines", second)
        expected.update(w for _, line in second for w in line.split())
        app = wordcount_app(broker.address, tmp_path / "run2")
        async with app:
            view = app.store("counts")
            await until("counts after the restart", lambda: view.all() == dict(expected))
            assert app.runtime is not None and app.runtime.restored > 0
        # The first run stopped cleanly (its last batch committed), so the exact counts
        # hold: at-least-once would allow overcounts only after a crash.
        out = await read_all(broker.address, "word-counts")
        assert {k.decode(): JSON.deserialize(v) for k, v in out if k} == dict(expected)

        # Same state dir as the run before: the checkpoint means no full replay.
        app = wordcount_app(broker.address, tmp_path / "run2")
        async with app:
            await until("tasks assigned", lambda: app.runtime is not None
                        and len(app.runtime.tasks) == 6)
            assert app.runtime is not None and app.runtime.restored == 0
            assert app.store("counts").get("dog") == 10

    run(go())


def test_stream_table_join_enriches_orders_with_customers(
        broker: BrokerProcess, tmp_path: Path) -> None:
    async def go() -> None:
        async with Admin(broker.address) as admin:
            await admin.create_topic("customers", 2, configs={"cleanup.policy": "compact"})
            await admin.create_topic("orders", 2)
        await produce(broker.address, "customers", [
            ("c1", JSON.serialize({"name": "Ann"}).decode()),  # type: ignore[union-attr]
            ("c2", JSON.serialize({"name": "Bob"}).decode())])  # type: ignore[union-attr]
        app = App(broker.address, "enrich", state_dir=tmp_path)
        customers = app.table("customers", STR, JSON)
        (app.stream("orders", STR, JSON)
            .join(customers, lambda order, c: {**order, "customer": c["name"]})
            .to("orders-enriched", STR, JSON))
        async with app:
            await until("customers loaded", lambda: len(app.store("customers").all()) == 2)
            await produce(broker.address, "orders", [
                ("c1", '{"id": 1}'), ("c3", '{"id": 2}'), ("c2", '{"id": 3}')])

            async def enriched() -> bool:
                return len(await read_all(broker.address, "orders-enriched")) == 2
            await until("enriched orders", enriched)
        out = await read_all(broker.address, "orders-enriched")
        assert sorted(JSON.deserialize(v)["id"] for _, v in out) == [1, 3]
        assert {k: JSON.deserialize(v)["customer"] for k, v in out} == {
            b"c1": "Ann", b"c2": "Bob"}  # c3 has no customer: an inner join drops it

    run(go())


def test_join_of_topics_not_co_partitioned_is_refused(
        broker: BrokerProcess, tmp_path: Path) -> None:
    async def go() -> None:
        async with Admin(broker.address) as admin:
            await admin.create_topic("accounts", 3)
            await admin.create_topic("payments", 2)
        app = App(broker.address, "badjoin", state_dir=tmp_path)
        app.stream("payments", STR, STR).join(app.table("accounts", STR, STR),
                                              lambda p, a: p).to("x")
        with pytest.raises(TopologyError, match=r"'payments' has 2, 'accounts' has 3"):
            await app.start()

    run(go())


def test_store_query_of_a_stopped_app_is_not_local(tmp_path: Path) -> None:
    app = wordcount_app("127.0.0.1:1", tmp_path)
    app._partitions = {0: 1, 1: 1}
    with pytest.raises(NotLocalError):
        app.store("counts").get("x")


async def send(bootstrap: str, topic: str, records: list[tuple[str, bytes | None, int]]
               ) -> None:
    """(key, value, timestamp) records, in order."""
    async with Producer(bootstrap) as producer:
        for key, value, ts in records:
            await producer.send(topic, value, key=key, timestamp_ms=ts)
        await producer.flush()


def n(value: int) -> bytes:
    data = INT.serialize(value)
    assert data is not None
    return data


def j(value: object) -> bytes:
    data = JSON.serialize(value)
    assert data is not None
    return data


def test_table_table_and_global_table_joins(broker: BrokerProcess, tmp_path: Path) -> None:
    async def go() -> None:
        async with Admin(broker.address) as admin:
            for topic in ("members", "member-limits", "regions"):
                await admin.create_topic(topic, 2, configs={"cleanup.policy": "compact"})
            await admin.create_topic("purchases", 3)  # not co-partitioned with anything
        # rows written before the app starts: a global table is read to its end first
        await send(broker.address, "regions", [("eu", j("Europe"), 1), ("us", j("America"), 1)])
        await send(broker.address, "members", [("ann", j({"region": "eu"}), 1),
                                                ("bob", j({"region": "us"}), 1)])
        await send(broker.address, "member-limits", [("ann", j(100), 1)])
        app = App(broker.address, "membership", state_dir=tmp_path)
        members, limits = app.table("members", STR, JSON), app.table("member-limits", STR, JSON)
        members.left_join(limits, lambda a, lim: {**a, "limit": lim}, "members-with-limits"
                           ).to("members-with-limits", STR, JSON)
        regions = app.global_table("regions", STR, JSON)
        (app.stream("purchases", STR, JSON)
            .join(regions, lambda p, r: {**p, "region": r}, key_fn=lambda _k, p: p["region"])
            .to("purchases-by-region", STR, JSON))
        async with app:
            view = app.store("members-with-limits")
            await until("the joined table", lambda: view.all() == {
                "ann": {"region": "eu", "limit": 100},
                "bob": {"region": "us", "limit": None}})
            assert app.store("regions").get("us") == "America"
            await send(broker.address, "member-limits", [("bob", j(50), 2), ("ann", None, 2)])
            await send(broker.address, "regions", [("apac", j("Asia"), 2)])
            await until("limits updated", lambda: view.all() == {
                "ann": {"region": "eu", "limit": None},
                "bob": {"region": "us", "limit": 50}})
            await until("the global table follows its topic",
                        lambda: app.store("regions").get("apac") == "Asia")
            await send(broker.address, "purchases", [
                ("p1", j({"region": "eu", "amount": 5}), 3),
                ("p2", j({"region": "mars", "amount": 7}), 3),  # no such region: dropped
                ("p3", j({"region": "apac", "amount": 9}), 3)])

            async def priced() -> bool:
                return len(await read_all(broker.address, "purchases-by-region")) == 2
            await until("purchases joined to regions", priced)
        out = {k: JSON.deserialize(v) for k, v in
               await read_all(broker.address, "purchases-by-region")}
        assert out == {b"p1": {"region": "Europe", "amount": 5},
                       b"p3": {"region": "Asia", "amount": 9}}
        updates = [(k, JSON.deserialize(v)) for k, v in
                   await read_all(broker.address, "members-with-limits")]
        # ann's account and limit may be processed in either order (ann without a limit
        # first, or not); the limit's tombstone is the last change.
        ann = [v for k, v in updates if k == b"ann"]
        assert ann[-2:] == [{"region": "eu", "limit": 100}, {"region": "eu", "limit": None}]

    run(go())


def test_stream_stream_join_and_suppressed_sessions_on_event_time(
        broker: BrokerProcess, tmp_path: Path) -> None:
    async def go() -> None:
        async with Admin(broker.address) as admin:
            await admin.create_topic("ad-views", 2)
            await admin.create_topic("ad-clicks", 2)
        app = App(broker.address, "ads", state_dir=tmp_path)
        views, clicks = app.stream("ad-views", STR, INT), app.stream("ad-clicks", STR, INT)
        # a click counts for a view at most 10 ms before it (event time)
        (views.join(clicks, lambda v, c: [v, c], "view-click",
                    windows=JoinWindows(before_ms=0, after_ms=10))
            .to("view-clicks", STR, JSON))
        (clicks.group_by_key().windowed_by(SessionWindows(gap_ms=5)).count("sessions")
            .suppress().to("click-sessions", value_serde=JSON))
        async with app:
            await send(broker.address, "ad-views", [("ad1", n(1), 100),
                                                    ("ad2", n(2), 100)])
            await until("tasks running", lambda: app.runtime is not None
                        and len(app.runtime.tasks) == 2)
            # ad1: clicks at 105 (joins the view at 100) and 108 (same session), then 200
            # (too late for the view; a new session, which closes the first); ad2: a click
            # at 130, 30 ms after its view: no join.
            await send(broker.address, "ad-clicks", [
                ("ad1", n(11), 105), ("ad1", n(12), 108),
                ("ad2", n(13), 130), ("ad1", n(14), 200)])

            async def joined() -> bool:
                return len(await read_all(broker.address, "view-clicks")) >= 2
            await until("the joined clicks", joined)

            async def sessions() -> bool:
                return len(await read_all(broker.address, "click-sessions")) >= 1
            await until("a closed session", sessions)
        pairs = sorted((k, JSON.deserialize(v)) for k, v in
                       await read_all(broker.address, "view-clicks"))
        assert pairs == [(b"ad1", [1, 11]), (b"ad1", [1, 12])]
        serde = WindowedSerde(STR)
        finals = [(serde.deserialize(k), JSON.deserialize(v)) for k, v in
                  await read_all(broker.address, "click-sessions")]
        # ad1's [105, 108] closed when its stream time (the task's) passed 108 + 5;
        # ad2's session and ad1's [200, 200] are open. ad2 may share ad1's task, whose
        # stream time 200 closes it too.
        got = {(w.key, w.start, w.end): n for w, n in finals if w is not None}
        assert got.get(("ad1", 105, 108)) == 2
        assert set(got) <= {("ad1", 105, 108), ("ad2", 130, 130)}
        assert len(finals) == len(got)  # each emitted once

    run(go())


def counting_app(bootstrap: str, app_id: str, topic: str, state_dir: Path) -> App:
    app = App(bootstrap, app_id, state_dir=state_dir)
    (app.stream(topic, STR, STR)
        .flat_map(lambda _k, line: [(w, w) for w in line.split()], key_serde=STR)
        .group_by_key().count("counts").to(f"{topic}-counts", STR, JSON))
    return app


def test_rebalance_moves_tasks_and_their_state_both_ways(
        broker: BrokerProcess, tmp_path: Path) -> None:
    """A second instance joins: part of the first's tasks move to it with their stores
    (rebuilt there from the changelogs); it leaves: they move back and the first reopens
    them from its checkpoints. Every hand-over is clean, so the counts are exact."""
    async def go() -> None:
        async with Admin(broker.address) as admin:
            await admin.create_topic("rb-lines", 4)
        expected: Counter[str] = Counter()

        async def batch(tag: str, count: int) -> None:
            lines = [(f"{tag}{i}", f"w{i % 13} x{i % 5} {tag}") for i in range(count)]
            await produce(broker.address, "rb-lines", lines)
            expected.update(w for _, line in lines for w in line.split())

        def everywhere(*apps: App) -> dict[str, int]:
            merged: dict[str, int] = {}
            for a in apps:
                for k, v in a.store("counts").all().items():
                    assert k not in merged, f"{k} is held by two instances"
                    merged[k] = v
            return merged

        first = counting_app(broker.address, "rb", "rb-lines", tmp_path / "a")
        second = counting_app(broker.address, "rb", "rb-lines", tmp_path / "b")
        await batch("a", 80)
        async with first:
            await until("the first instance's counts", lambda: everywhere(first) == expected)
            assert first.runtime is not None and len(first.runtime.tasks) == 8
            async with second:
                def split() -> bool:
                    assert first.runtime is not None and second.runtime is not None
                    mine, theirs = len(first.runtime.tasks), len(second.runtime.tasks)
                    return mine > 0 and theirs > 0 and mine + theirs == 8
                await until("the tasks spread over both instances", split)
                assert second.runtime is not None and second.runtime.restored > 0
                moved = second.store("counts").all()
                assert moved and all(expected[k] == v for k, v in moved.items())
                await batch("b", 60)
                await until("both instances' counts",
                            lambda: everywhere(first, second) == expected)
            await until("every task back on the first instance",
                        lambda: first.runtime is not None and len(first.runtime.tasks) == 8)
            await batch("c", 40)
            await until("the counts after the second left", lambda: everywhere(first) == expected)
        out = await read_all(broker.address, "rb-lines-counts")
        assert {k.decode(): JSON.deserialize(v) for k, v in out if k} == dict(expected)

    run(go())


def test_queries_routed_to_the_owner_and_standbys_kept_warm(
        broker: BrokerProcess, tmp_path: Path) -> None:
    """Two instances serving queries, one standby each: a query for any key answers from
    whichever instance runs it (over gRPC), a range covers both; every stateful task has
    its standby on the other instance, kept up to the changelog's end, so that when one
    instance leaves the other takes its tasks over without replaying their changelogs;
    `odradek streams describe` shows owners and standbys."""
    async def go() -> None:
        async with Admin(broker.address) as admin:
            await admin.create_topic("iq-lines", 4)
        lines = [(f"l{i}", f"w{i % 17} v{i % 3}") for i in range(90)]
        expected = Counter(w for _, line in lines for w in line.split())
        await produce(broker.address, "iq-lines", lines)
        apps = [App(broker.address, "iq", state_dir=tmp_path / name, query_address="127.0.0.1:0",
                    standby_replicas=1, instance_id=name) for name in ("ia", "ib")]
        for app in apps:
            (app.stream("iq-lines", STR, STR)
                .flat_map(lambda _k, line: [(w, w) for w in line.split()], key_serde=STR)
                .group_by_key().count("counts"))
        first, second = apps
        stateful = {(1, p) for p in range(4)}  # the repartition topic's tasks hold counts
        async with first, second:
            def placed() -> bool:
                view = first.instances()
                if set(view) != {"ia", "ib"}:
                    return False
                active = {i: {parse_task(t) for t in info.active} for i, info in view.items()}
                standby = {i: {parse_task(t) for t in info.standby} for i, info in view.items()}
                return (active["ia"] | active["ib"] == {(g, p) for g in (0, 1) for p in range(4)}
                        and not active["ia"] & active["ib"]
                        and standby["ia"] == stateful & active["ib"]
                        and standby["ib"] == stateful & active["ia"])
            await until("tasks and standbys placed over both instances", placed)
            for app in apps:
                async def all_counted(app: App = app) -> bool:
                    return dict(await app.query_range("counts")) == dict(expected)
                await until("the counts seen from each instance", all_counted)
            remote = [w for w in expected if w not in first.store("counts").all()]
            assert remote, "every key is on the first instance: nothing was routed"
            for w in expected:
                assert await first.query("counts", w) == expected[w]
                assert await second.query("counts", w) == expected[w]
            assert await first.query("counts", "absent") is None
            # what `odradek streams query` sends: no partition, the instance routes it
            client = QueryClient()
            try:
                endpoint = first.instances()["ia"].endpoint
                for w in remote:
                    got = await client.get(endpoint, "iq", "counts", -1, w.encode())
                    assert got is not None and JSON.deserialize(got) == expected[w]
            finally:
                await client.close()
            text = await shell_odradek(broker.address, "streams", "query", "iq", "counts",
                                       remote[0])
            assert json.loads(text) == expected[remote[0]]
            assert [k for k, _ in await first.query_range("counts", "w1", "w2")] == sorted(
                w for w in expected if "w1" <= w < "w2")

            described = json.loads(await shell_odradek(broker.address, "streams", "describe",
                                                       "iq", "--json"))
            tasks = {t["task"]: t for t in described["tasks"]}
            assert len(tasks) == 8 and {i["instance"] for i in described["instances"]} == {
                "ia", "ib"}
            for g, p in stateful:
                entry = tasks[f"{g}_{p}"]
                assert set(entry["standbys"]) == {"ia", "ib"} - {entry["owner"]}
            text = await shell_odradek(broker.address, "streams", "describe", "iq")
            assert "2 live instance(s)" in text and "STANDBYS" in text

            assert second.runtime is not None and first.runtime is not None
            standbys = second.runtime.standbys

            async def warm() -> bool:
                lags = await standbys.lags()
                return set(lags) == set(standbys.copies) and all(n == 0 for n in lags.values())
            await until("the second instance's standbys at the changelogs' ends", warm)
            assert standbys.applied > 0
            moving = set(standbys.copies)
            before = second.runtime.restored
            await first.stop()

            async def took_over() -> bool:
                assert second.runtime is not None
                return len(second.runtime.tasks) == 8
            await until("the second instance running every task", took_over)
            # the standbys were at the changelogs' ends: nothing to replay
            assert second.runtime.restored == before, moving
            assert second.store("counts").all() == dict(expected)

    run(go())


async def shell_odradek(bootstrap: str, *args: str) -> str:
    """The odradek command, awaited: the apps it may query run on this event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "odradek.cli.main", *args, "-b", bootstrap,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    return out.decode()


def scrape_streams(port: int) -> dict[str, float]:
    """An app's /metrics: per series name, the sum of its samples (over tasks and stores)."""
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=15) as reply:
        text = reply.read().decode()
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert sample.labels.get("application") == "metered", sample
            sums[sample.name] = sums.get(sample.name, 0) + sample.value
    return sums


def metered_app(bootstrap: str, state_dir: Path) -> App:
    app = App(bootstrap, "metered", state_dir=state_dir, metrics_port=free_port(),
              metrics_host="127.0.0.1")
    (app.stream("metered-lines", STR, STR)
        .flat_map(lambda _k, line: [(w, w) for w in line.split()], key_serde=STR)
        .group_by_key().count("metered").to("metered-counts", STR, JSON))
    return app


def test_prometheus_metrics_of_the_tasks_while_the_app_runs(
        broker: BrokerProcess, tmp_path: Path) -> None:
    async def go() -> None:
        async with Admin(broker.address) as admin:
            await admin.create_topic("metered-lines", 2)
        lines = [(f"l{i}", f"to be or not {i % 3}") for i in range(20)]
        words = Counter(w for _, line in lines for w in line.split())
        app = metered_app(broker.address, tmp_path / "a")
        async with app:
            assert app.metrics_port is not None
            port = app.metrics_port
            await produce(broker.address, "metered-lines", lines)
            total = len(lines) + sum(words.values())  # lines, then words repartitioned

            async def scraped() -> bool:
                # the scrape waits for the app's loop: never from the loop itself
                got = await asyncio.to_thread(scrape_streams, port)
                return (got.get("odradek_streams_task_records_in_total") == total
                        and got.get("odradek_streams_committed_records_total") == total
                        and got.get("odradek_streams_task_lag") == 0)
            await until("the records in the scraped metrics", scraped)
            got = await asyncio.to_thread(scrape_streams, port)
            assert got["odradek_streams_store_keys"] == len(words)
            # per word: its count out and the count's changelog record; per line, its words
            assert got["odradek_streams_task_records_out_total"] == 3 * sum(words.values())
            assert got["odradek_streams_task_restored_records"] == 0
        with pytest.raises(OSError):  # stopped with the app
            scrape_streams(port)
        # Another instance with an empty state dir restores the counts from the changelog.
        again = metered_app(broker.address, tmp_path / "b")
        async with again:
            assert again.metrics_port is not None
            port = again.metrics_port

            async def restored() -> bool:
                got = await asyncio.to_thread(scrape_streams, port)
                # every count's changelog record (the active segment is never compacted)
                return got.get("odradek_streams_task_restored_records") == sum(words.values())
            await until("the restored records in the scraped metrics", restored)
            got = await asyncio.to_thread(scrape_streams, port)
            assert got["odradek_streams_restored_records_total"] == sum(words.values())
            assert "odradek_streams_restore_remaining_offsets" not in got  # none restoring

    run(go())


def test_restore_skips_changelog_records_of_input_never_committed(
        broker: BrokerProcess, tmp_path: Path) -> None:
    """A crash between the acknowledgement of a batch's changelog records and the commit of
    its input offsets leaves the changelog ahead of the committed input (here written as
    the crashed owner would have, with outputs lost). The next owner restores only what
    the committed input wrote and processes the rest again: the outputs are the
    failure-free run's. Restoring everything would make the replayed 7 come out as 9."""
    async def go() -> None:
        async with Admin(broker.address) as admin:
            await admin.create_topic("zv", 1)

        def build(state_dir: Path) -> App:
            app = App(broker.address, "zombie", state_dir=state_dir)
            app.stream("zv", STR, INT).group_by_key().reduce("highest", max, INT).to(
                "zv-highest", STR, INT)
            return app
        first = build(tmp_path / "a")
        async with first:
            await send(broker.address, "zv", [("k", n(5), 1)])
            assert first.runtime is not None
            await until("the first version committed", lambda: first.runtime is not None
                        and first.runtime.committed == 1)
        await send(broker.address, "zv", [("k", n(7), 2), ("k", n(9), 3)])  # offsets 1, 2
        async with Producer(broker.address) as producer:  # the crashed batch's changelog
            for value, offset in ((7, 1), (9, 2)):
                await producer.send("zombie-highest-changelog", n(value), b"k", 0,
                                    headers=[(SOURCE_HEADER, encode_source("zv", offset))])
            await producer.flush()
        second = build(tmp_path / "b")  # empty state: restored from the changelog
        async with second:
            await until("the replayed versions committed", lambda: second.runtime is not None
                        and second.runtime.committed == 2)
            assert second.store("highest").get("k") == 9
        out = [INT.deserialize(v) for _, v in await read_all(broker.address, "zv-highest")]
        assert out == [5, 7, 9]

    run(go())


def test_queries_over_mutual_tls(broker: BrokerProcess, tmp_path: Path) -> None:
    """Two instances whose query servers require client certificates signed by the CA:
    each answers every key (routed over TLS to the other for the keys it runs), so does
    `odradek streams query` given the CA and a client certificate; a plaintext caller
    and a TLS caller without a certificate are refused."""
    pki = make_pki(tmp_path / "pki")
    tls = ServerTLS(pki.broker_cert, pki.broker_key, pki.ca, "required")

    async def go() -> None:
        async with Admin(broker.address) as admin:
            await admin.create_topic("tq-lines", 4)
        lines = [(f"l{i}", f"w{i % 11}") for i in range(40)]
        expected = Counter(line for _, line in lines)
        await produce(broker.address, "tq-lines", lines)
        apps = [App(broker.address, "tq", state_dir=tmp_path / name, instance_id=name,
                    query_address="127.0.0.1:0", query_tls=tls) for name in ("ta", "tb")]
        for app in apps:
            (app.stream("tq-lines", STR, STR).map(lambda _k, w: (w, w), key_serde=STR)
                .group_by_key().count("tq-counts"))
        first, second = apps
        async with first, second:
            every = {(g, p) for g in (0, 1) for p in range(4)}

            def settled() -> bool:  # each task on one instance, as both registries say
                views = [a.instances() for a in apps]
                if any(set(v) != {"ta", "tb"} for v in views):
                    return False
                active = [{parse_task(t) for t in info.active} for info in views[0].values()]
                return active[0] | active[1] == every and not active[0] & active[1]
            await until("the tasks placed over both instances", settled, 60)

            async def both_counted() -> bool:
                try:
                    return all([dict(await a.query_range("tq-counts")) == dict(expected)
                                for a in apps]) and all(
                        [await first.query("tq-counts", w) == n for w, n in expected.items()])
                except NotLocalError:  # a task still moving: ask again
                    return False
            await until("the counts seen from both instances over TLS", both_counted, 60)
            remote = [w for w in expected if w not in first.store("tq-counts").all()]
            assert remote, "every key is on the first instance: nothing was routed"
            assert second._server is not None
            endpoint = second._server.endpoint
            # the command line, with the instances' CA and a client certificate
            text = await shell_odradek(
                broker.address, "streams", "query", "tq", "tq-counts", remote[0],
                "--query-tls-ca", str(pki.ca), "--query-tls-cert", str(pki.client_cert),
                "--query-tls-key", str(pki.client_key))
            assert json.loads(text) == expected[remote[0]]
            for refused in (QueryClient(), QueryClient(ClientTLS(pki.ca))):
                try:
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await refused.get(endpoint, "tq", "tq-counts", -1, b"w1")
                    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
                finally:
                    await refused.close()

    run(go())


def test_an_app_on_a_tls_only_broker(tmp_path: Path) -> None:
    """Every connection of the app (admin, consumer group, producer, changelog readers,
    registry) goes through the TLS options given: a broker that only speaks mutual TLS
    counts the words."""
    pki = make_pki(tmp_path / "pki")
    tls = client_tls(pki)
    secure = BrokerProcess(tmp_path / "tls-b0", extra_args=tls_args(pki), tls=tls).start()
    try:
        async def go() -> None:
            files = {"tls_ca": pki.ca, "tls_cert": pki.client_cert, "tls_key": pki.client_key}
            async with Admin(secure.address, **files) as admin:
                await admin.create_topic("lines", 2)
            async with Producer(secure.address, **files) as producer:
                for i in range(10):
                    await producer.send("lines", f"a b {i % 2}", key=f"l{i}")
                await producer.flush()
            app = App(secure.address, "wc", state_dir=tmp_path / "s", tls=tls)
            (app.stream("lines", STR, STR)
                .flat_map(lambda _k, line: [(w, w) for w in line.split()], key_serde=STR)
                .group_by_key().count("counts"))
            async with app:
                view = app.store("counts")
                await until("the counts over TLS",
                            lambda: view.all() == {"a": 10, "b": 10, "0": 5, "1": 5})
        run(go())
    finally:
        secure.stop()
