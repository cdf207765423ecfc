"""Consumer groups with real processes: three brokers, `odradek consume --group` members
killed with -9, a static member restarting, the coordinator's broker killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from odradek.client import SyncAdmin, SyncProducer
from odradek.client.errors import OdradekError
from tests.brokers import ClusterProcesses

T = TypeVar("T")
SESSION_MS = 3000
# Long enough for a killed static member's process to come back on a busy machine.
STATIC_SESSION_MS = 15_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcesses]:
    procs = ClusterProcesses(tmp_path_factory.mktemp("groups"),
                             extra_args=["--offsets-topic-partitions", "4"]).start()
    try:
        yield procs
    finally:
        procs.stop()


@pytest.fixture
def admin(cluster: ClusterProcesses) -> Iterator[SyncAdmin]:
    with SyncAdmin(cluster.bootstrap, request_timeout_ms=10_000) as a:
        yield a


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except OdradekError as exc:  # the coordinator may be moving: ask again
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


class Member:
    """`odradek consume --group` in a child process, its records in a file."""

    def __init__(self, root: Path, name: str, bootstrap: str, group: str, topic: str,
                 instance: str = "", session_ms: int = SESSION_MS) -> None:
        self.path = root / f"{name}.jsonl"
        self.cmd = [sys.executable, "-m", "odradek.cli.main", "consume", topic,
                    "--bootstrap", bootstrap, "--group", group, "--from-beginning",
                    "--format", "json", "--session-timeout-ms", str(session_ms)]
        if instance:
            self.cmd += ["--group-instance-id", instance]
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = root / f"{name}.err"

    def start(self) -> Member:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.path, "ab") as out, open(self.stderr, "ab") as err:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=err, env=env)
        return self

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def records(self) -> list[tuple[int, int, str]]:
        """(partition, offset, value) in the order printed; a torn last line is skipped."""
        out = []
        for line in self.path.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            out.append((r["partition"], r["offset"], r["value"]))
        return out


@pytest.fixture
def members() -> Iterator[list[Member]]:
    started: list[Member] = []
    yield started
    for m in started:
        m.kill9()


def produce(bootstrap: str, topic: str, values: list[str]) -> None:
    with SyncProducer(bootstrap) as producer:
        sent = [producer.send(topic, v, key=v) for v in values]
        for future in sent:
            future.result(timeout=60)


def assignment(admin: SyncAdmin, group: str) -> dict[str, set[int]]:
    d = admin.describe_group(group)
    return {m.instance_id or m.member_id: {p for a in m.assigned for p in a.partitions}
            for m in d.members}


def stable_with(admin: SyncAdmin, group: str, count: int) -> dict[str, set[int]] | None:
    d = admin.describe_group(group)
    if d.state != "STABLE" or len(d.members) != count:
        return None
    return assignment(admin, group)


def check_order(member: Member) -> None:
    """Per partition, each member printed new records in offset order. A member that lost
    its partitions (e.g. reconnecting after its session expired) may read again from the
    committed offset: those repeats are allowed (at least once), not a reordering."""
    seen: set[tuple[int, int]] = set()
    last: dict[int, int] = {}
    for partition, offset, _ in member.records():
        if (partition, offset) in seen:
            continue
        assert offset > last.get(partition, -1), \
            f"{member.path.name}: partition {partition} went from {last[partition]} to {offset}"
        last[partition] = offset
        seen.add((partition, offset))


def test_kill9_member_partitions_move_and_nothing_is_lost(
        cluster: ClusterProcesses, admin: SyncAdmin, members: list[Member],
        tmp_path: Path) -> None:
    topic, group = "orders", "billing"
    admin.create_topic(topic, 6, 3)
    for i in range(4):
        members.append(Member(tmp_path, f"m{i}", cluster.bootstrap, group, topic).start())
    before = wait_for("4 stable members", lambda: stable_with(admin, group, 4))
    assert sorted(p for ps in before.values() for p in ps) == list(range(6))
    first = [f"a{i}" for i in range(3000)]
    produce(cluster.bootstrap, topic, first)
    wait_for("some records consumed", lambda: sum(len(m.records()) for m in members) > 500)
    victim = max(members, key=lambda m: len({p for p, _, _ in m.records()}))
    victim_partitions = {p for p, _, _ in victim.records()}
    victim.kill9()
    second = [f"b{i}" for i in range(3000)]
    produce(cluster.bootstrap, topic, second)
    after = wait_for("3 stable members", lambda: stable_with(admin, group, 3))
    assert sorted(p for ps in after.values() for p in ps) == list(range(6))
    survivors = [m for m in members if m is not victim]

    def all_processed() -> bool:
        seen = {v for m in members for _, _, v in m.records()}
        return seen >= set(first) | set(second)

    wait_for("every record processed at least once", all_processed)
    for m in members:
        check_order(m)
    # No committed record lost: records were produced once the group was stable, so a
    # survivor's records of a victim's partition come after the kill, and its first one is
    # at or before the victim's next offset (the committed offset it resumed from).
    victim_next: dict[int, int] = {}
    for p, offset, _ in victim.records():
        victim_next[p] = offset + 1
    for p in victim_partitions:
        starts = [o for m in survivors for q, o, _ in m.records() if q == p]
        assert starts and min(starts) <= victim_next[p]

    # Survivors keep committing: the group catches up with the log.
    def caught_up() -> bool:
        d = admin.describe_group(group)
        return all(p.lag == 0 for p in d.partitions) and len(d.partitions) == 6

    wait_for("committed offsets at the log end", caught_up)


def test_static_member_restart_inside_session_timeout_is_no_rebalance(
        cluster: ClusterProcesses, admin: SyncAdmin, members: list[Member],
        tmp_path: Path) -> None:
    topic, group = "shipments", "warehouse"
    admin.create_topic(topic, 4, 3)
    a = Member(tmp_path, "a", cluster.bootstrap, group, topic, "static-a", STATIC_SESSION_MS)
    b = Member(tmp_path, "b", cluster.bootstrap, group, topic, "static-b", STATIC_SESSION_MS)
    members += [a.start(), b.start()]
    before = wait_for("2 stable members", lambda: stable_with(admin, group, 2))
    generation = admin.describe_group(group).generation
    a.kill9()

    def connected(instance: str) -> bool:
        return {m.instance_id: m.connected for m in admin.describe_group(group).members
                }.get(instance, False)

    wait_for("the coordinator to see the member gone", lambda: not connected("static-a"))
    again = Member(tmp_path, "a2", cluster.bootstrap, group, topic, "static-a",
                   STATIC_SESSION_MS)
    members.append(again.start())
    wait_for("the static member back", lambda: connected("static-a"))
    produce(cluster.bootstrap, topic, [f"s{i}" for i in range(200)])
    wait_for("the restarted member consumes", lambda: len(again.records()) > 0)
    d = admin.describe_group(group)
    assert d.generation == generation, "the restart caused a rebalance"
    assert assignment(admin, group) == before
    assert {p for p, _, _ in again.records()} == before["static-a"]


def test_group_admin_and_coordinator_failover_keeps_committed_offsets(
        cluster: ClusterProcesses, admin: SyncAdmin, members: list[Member],
        tmp_path: Path) -> None:
    topic, group = "ledger", "audit"
    admin.create_topic(topic, 3, 3)
    produce(cluster.bootstrap, topic, [f"l{i}" for i in range(300)])
    member = Member(tmp_path, "l", cluster.bootstrap, group, topic).start()
    members.append(member)
    wait_for("all consumed", lambda: len(member.records()) >= 300)

    def committed_all() -> dict[tuple[str, int], int] | None:
        offsets = admin.group_offsets(group)
        ends = {(topic, p): admin.list_offsets(topic, p).offset for p in range(3)}
        return offsets if offsets == ends else None

    wait_for("offsets committed", committed_all)
    assert "__consumer_offsets" not in {t.name for t in admin.list_topics()}
    assert [t.internal for t in admin.list_topics(include_internal=True)
            if t.name == "__consumer_offsets"] == [True]
    cli = [sys.executable, "-m", "odradek.cli.main"]
    reset = subprocess.run([*cli, "group", "reset", group, "-b", cluster.bootstrap, "--topic",
                            topic, "--to-earliest", "--execute"], capture_output=True, text=True,
                           timeout=60)
    # A live group: the member lets go, the offsets move, the member reads from them.
    assert reset.returncode == 0, reset.stderr
    wait_for("everything read again", lambda: len(member.records()) >= 600)
    first, again = member.records()[:300], member.records()[300:]
    assert sorted(again) == sorted(first), "the reset lost or repeated records"
    committed = wait_for("offsets committed again", committed_all)
    delete = subprocess.run([*cli, "group", "delete", group, "-b", cluster.bootstrap],
                            capture_output=True, text=True, timeout=60)
    assert delete.returncode == 1 and "NON_EMPTY_GROUP" in delete.stderr
    member.kill9()
    wait_for("the member removed", lambda: not admin.describe_group(group).members)
    # The coordinator's broker dies: a new leader of the internal partition rebuilds the
    # group from the replicated log.
    coordinator = admin.describe_group(group).coordinator_id
    metrics = cluster.brokers[coordinator].scrape()
    assert f'odradek_consumer_group_committed_offset{{group="{group}",partition="0",' \
           f'topic="{topic}"}}' in metrics
    cluster.brokers[coordinator].kill9()
    try:
        assert wait_for("offsets from the new coordinator",
                        lambda: admin.group_offsets(group)) == committed
        assert admin.describe_group(group).coordinator_id != coordinator
        dry = admin.reset_group_offsets(group, [topic], shift_by=-10, dry_run=True)
        assert {(c.topic, c.partition): c.offset for c in dry} == \
            {tp: o - 10 for tp, o in committed.items()}
        assert admin.group_offsets(group) == committed
        listed = subprocess.run([*cli, "group", "list", "-b", cluster.bootstrap],
                                capture_output=True, text=True, timeout=60)
        assert group in listed.stdout
        done = subprocess.run([*cli, "group", "reset", group, "-b", cluster.bootstrap,
                               "--all-topics", "--to-earliest", "--execute"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert set(admin.group_offsets(group).values()) == {0}
        admin.delete_group(group)
        with pytest.raises(OdradekError) as info:
            admin.describe_group(group)
        assert info.value.reason == "GROUP_ID_NOT_FOUND"
    finally:
        cluster.brokers[coordinator].start()
