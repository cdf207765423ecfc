"""odradek.streams against a real broker process: word count through a repartition topic
into a store and an output topic, a stream-table join, and a restart that restores the
store from its changelog and counts on."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from odradek.client import Admin, Consumer, Producer, TopicPartition
from odradek.streams import JSON, STR, App, NotLocalError, TopologyError
from tests.brokers import BrokerProcess


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
