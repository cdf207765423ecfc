"""odradek.streams' joins and windows against a real broker process: a table-table join
and a global-table join in one app, and a windowed stream-stream join next to session
windows suppressed until they close, all on the records' own timestamps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from odradek.client import Admin, Producer
from odradek.streams import (
    INT,
    JSON,
    STR,
    App,
    JoinWindows,
    SessionWindows,
    WindowedSerde,
)
from tests.brokers import BrokerProcess
from tests.integration.test_streams import read_all, run, until


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path_factory.mktemp("joins") / "b0").start()
    try:
        yield proc
    finally:
        proc.stop()


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
            for topic in ("accounts", "limits", "regions"):
                await admin.create_topic(topic, 2, configs={"cleanup.policy": "compact"})
            await admin.create_topic("payments", 3)  # not co-partitioned with anything
        # rows written before the app starts: a global table is read to its end first
        await send(broker.address, "regions", [("eu", j("Europe"), 1), ("us", j("America"), 1)])
        await send(broker.address, "accounts", [("ann", j({"region": "eu"}), 1),
                                                ("bob", j({"region": "us"}), 1)])
        await send(broker.address, "limits", [("ann", j(100), 1)])
        app = App(broker.address, "accounting", state_dir=tmp_path)
        accounts, limits = app.table("accounts", STR, JSON), app.table("limits", STR, JSON)
        accounts.left_join(limits, lambda a, lim: {**a, "limit": lim}, "account-limits"
                           ).to("account-limits", STR, JSON)
        regions = app.global_table("regions", STR, JSON)
        (app.stream("payments", STR, JSON)
            .join(regions, lambda p, r: {**p, "region": r}, key_fn=lambda _k, p: p["region"])
            .to("payments-by-region", STR, JSON))
        async with app:
            view = app.store("account-limits")
            await until("the joined table", lambda: view.all() == {
                "ann": {"region": "eu", "limit": 100},
                "bob": {"region": "us", "limit": None}})
            assert app.store("regions").get("us") == "America"
            await send(broker.address, "limits", [("bob", j(50), 2), ("ann", None, 2)])
            await send(broker.address, "regions", [("apac", j("Asia"), 2)])
            await until("limits updated", lambda: view.all() == {
                "ann": {"region": "eu", "limit": None},
                "bob": {"region": "us", "limit": 50}})
            await until("the global table follows its topic",
                        lambda: app.store("regions").get("apac") == "Asia")
            await send(broker.address, "payments", [
                ("p1", j({"region": "eu", "amount": 5}), 3),
                ("p2", j({"region": "mars", "amount": 7}), 3),  # no such region: dropped
                ("p3", j({"region": "apac", "amount": 9}), 3)])

            async def priced() -> bool:
                return len(await read_all(broker.address, "payments-by-region")) == 2
            await until("payments joined to regions", priced)
        out = {k: JSON.deserialize(v) for k, v in
               await read_all(broker.address, "payments-by-region")}
        assert out == {b"p1": {"region": "Europe", "amount": 5},
                       b"p3": {"region": "Asia", "amount": 9}}
        updates = [(k, JSON.deserialize(v)) for k, v in
                   await read_all(broker.address, "account-limits")]
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
