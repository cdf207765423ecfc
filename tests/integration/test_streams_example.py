"""examples/ against a real broker: wordcount as two processes, one killed with -9 while
lines keep coming, the other taking its tasks over, restoring their counts from the
changelog and counting on with nothing lost; the other examples' READMEs run as written
(the app as a process, the shell commands with `.venv/bin/odradek` as this interpreter's
odradek command and ODRADEK_BOOTSTRAP pointing at the broker, the output of the reads
after the last produce, a consume or `odradek streams query`, compared with the
README's)."""

from __future__ import annotations

import functools
import itertools
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from odradek.client import Consumer, TopicPartition
from odradek.client.errors import UnknownTopicOrPartitionError
from odradek.client.partitioner import partition_for_key
from odradek.streams import JSON
from odradek.streams.registry import InstanceInfo
from tests.brokers import BrokerProcess, terminate
from tests.integration.test_streams import produce, read_all, run, until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE = EXAMPLES / "wordcount" / "wordcount.py"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path / "b0").start()
    try:
        yield proc
    finally:
        proc.stop()


def start_instance(bootstrap: str, state_dir: Path, log: Path, example: Path = EXAMPLE,
                   *extra: str) -> subprocess.Popen[bytes]:
    if example == EXAMPLE:
        extra = ("--print-every", "0.5", *extra)
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, str(example), "--bootstrap", bootstrap, "--state-dir",
             str(state_dir), *extra], stdout=out, stderr=subprocess.STDOUT)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


async def last_counts(bootstrap: str) -> dict[str, int]:
    return {k.decode(): JSON.deserialize(v)
            for k, v in await read_all(bootstrap, "word-counts") if k is not None}


def test_two_instances_one_killed_the_other_takes_over(
        broker: BrokerProcess, tmp_path: Path) -> None:
    procs = [start_instance(broker.address, tmp_path / f"s{i}", tmp_path / f"app{i}.log")
             for i in range(2)]

    def logs() -> str:
        return "\n".join((tmp_path / f"app{i}.log").read_text() for i in range(2))

    async def go() -> None:
        async def members() -> bool:
            # both instances joined: each prints the words of its partitions
            return all("top words" in (tmp_path / f"app{i}.log").read_text()
                       for i in range(2))
        await until("both instances running", members, timeout=40)
        first = [(f"a{i}", f"alpha beta w{i % 7}") for i in range(60)]
        await produce(broker.address, "lines", first)
        expected = Counter(w for _, line in first for w in line.split())

        async def counted() -> bool:
            return await last_counts(broker.address) == dict(expected)
        await until("counts of the first lines", counted, timeout=40)
        async with Consumer(broker.address, group_id="wordcount") as group:
            owners = await group.committed([("lines", p) for p in range(3)])
        assert sum(owners.values()) > 0

        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=10)
        second = [(f"b{i}", f"beta gamma w{i % 5}") for i in range(60)]
        await produce(broker.address, "lines", second)
        expected.update(w for _, line in second for w in line.split())

        async def caught_up() -> bool:
            got = await last_counts(broker.address)
            return set(got) == set(expected) and all(got[w] >= n for w, n in expected.items())
        await until("the survivor's counts", caught_up, timeout=60)
        got = await last_counts(broker.address)
        # At-least-once: nothing lost (>=). A record the killed instance processed but had
        # not committed is counted again by the survivor; the first lines were all
        # committed before the kill (the counts had settled), so only the second lines
        # may count twice, at most once more each.
        for w, n in expected.items():
            assert n <= got[w] <= n + sum(line.split().count(w) for _, line in second), w

    try:
        run(go())
    except BaseException:
        print(logs())
        raise
    finally:
        stop_all(procs)
    assert procs[1].returncode == 0, logs()
    survivor = (tmp_path / "app1.log").read_text()
    assert "wordcount stopped" in survivor
    # the survivor took over tasks of the killed one and rebuilt their stores
    assert "restored store counts" in survivor, survivor


def versions(seed: int, products: int, per_product: int) -> list[tuple[str, str]]:
    """Every version 1..per_product of each product, in a shuffled order (late old
    versions included), as (key, JSON value) records."""
    rng = random.Random(seed)
    records = [(f"p{p}", v) for p in range(products) for v in range(1, per_product + 1)]
    rng.shuffle(records)
    return [(k, json.dumps({"version": v, "price": v * 10})) for k, v in records]


def test_kill_9_of_an_instance_gives_the_failure_free_output(
        broker: BrokerProcess, tmp_path: Path) -> None:
    """examples/latest_versioned as two processes; one is killed with -9 while versions
    keep coming. The failure-free run's output is known (per product, the highest
    version so far after each record). With the crash: the last value per product equals
    the failure-free run's, every failure-free value is there (no loss), and nothing else
    is (a replay only repeats values the failure-free run wrote): the at-least-once
    guarantee with outputs keyed so that a replay overwrites."""
    example = EXAMPLES / "latest_versioned" / "latest_versioned.py"
    logs = [tmp_path / f"lv{i}.log" for i in range(2)]
    procs = [start_instance(broker.address, tmp_path / f"s{i}", logs[i], example)
             for i in range(2)]
    records = versions(7, 12, 30)
    expected: dict[str, list[dict[str, int]]] = {}
    for key, value in records:  # the failure-free output: each record, the running max
        held = expected.setdefault(key, [])
        v = json.loads(value)
        held.append(v if not held or v["version"] > held[-1]["version"] else held[-1])

    async def go() -> None:
        async def both_run_tasks() -> bool:
            try:
                registry = await read_all(broker.address, "latest-versioned-instances")
            except UnknownTopicOrPartitionError:  # the instances have not made it yet
                return False
            entries = {k.decode(): InstanceInfo.decode(k.decode(), v) for k, v in registry
                       if k is not None and v is not None}
            last = {i: e for i, e in entries.items() if e.fresh()}
            return len(last) == 2 and all(e.active for e in last.values())
        await until("both instances running tasks", both_run_tasks, timeout=60)
        third = len(records) // 3
        done = functools.partial(committed_to_end, broker.address, "latest-versioned",
                                 "product-versions", sorted(expected))
        await produce(broker.address, "product-versions", records[:third])
        # processed and committed: the survivor must rebuild this state from the changelog
        await until("the first third processed", done, timeout=60)
        await produce(broker.address, "product-versions", records[third:2 * third])
        procs[0].send_signal(signal.SIGKILL)  # with records in flight
        procs[0].wait(timeout=10)
        await produce(broker.address, "product-versions", records[2 * third:])
        await until("the survivor processed every version", done, timeout=90)
        out: dict[str, list[dict[str, int]]] = {}
        for k, v in await read_all(broker.address, "products-latest"):
            assert k is not None and v is not None
            out.setdefault(k.decode(), []).append(json.loads(v))
        assert set(out) == set(expected)
        for key, want in expected.items():
            got = out[key]
            assert got[-1] == want[-1], key
            assert {json.dumps(g, sort_keys=True) for g in got} == {
                json.dumps(w, sort_keys=True) for w in want}, key
            assert len(got) >= len(want), key

    try:
        run(go())
    except BaseException:
        print("\n".join(log.read_text() for log in logs))
        raise
    finally:
        stop_all(procs)
    assert procs[1].returncode == 0, logs[1].read_text()


def readme_blocks(example: str) -> tuple[list[str], str]:
    """The README's shell commands (whole-line comments cut) and its output block."""
    text = (EXAMPLES / example / "README.md").read_text()
    blocks = re.findall(r"```(\w*)\n(.*?)```", text, re.S)
    shell = next(body for lang, body in blocks if lang == "sh")
    output = next(body for lang, body in blocks if lang == "")
    commands = [line.strip() for line in shell.splitlines()
                if line.strip() and not line.startswith("#")]
    return commands, output


def shell(command: str, bootstrap: str) -> str:
    odradek = f"{shlex.quote(sys.executable)} -m odradek.cli.main"
    env = {**os.environ, "ODRADEK_BOOTSTRAP": bootstrap}
    done = subprocess.run(["bash", "-c", command.replace(".venv/bin/odradek", odradek)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (command, done.stderr)
    return done.stdout


async def committed_to_end(bootstrap: str, group: str, topic: str, keys: list[str]) -> bool:
    """The group committed the end of the partitions of these keys (a partition without
    records has no commit, only a leader's no-op batch at its end)."""
    async with Consumer(bootstrap, group_id=group) as c:
        count = len(await c.partitions_for(topic))
        tps = [TopicPartition(topic, partition_for_key(k.encode(), count)) for k in keys]
        ends = await c.end_offsets(tps)
        done = await c.committed(tps)
        return all(done.get(tp, 0) >= ends[tp] for tp in tps)


def produced(command: str) -> tuple[str, list[str]] | None:
    """The topic and keys a README's `printf 'k:v\\n...' | odradek produce` writes."""
    m = re.match(r"printf '(.*)' \| \.venv/bin/odradek produce (\S+) --key-separator :",
                 command)
    if m is None:
        return None
    return m.group(2), [line.split(":")[0] for line in m.group(1).split("\\n") if line]


@pytest.mark.parametrize("example,app_id", [("cqrs", "cqrs"), ("enrichment", "enrichment"),
                                            ("latest_versioned", "latest-versioned"),
                                            ("memory_image", "memory-image"),
                                            ("orders", "orders")])
def test_readme(broker: BrokerProcess, tmp_path: Path, example: str, app_id: str) -> None:
    commands, expected = readme_blocks(example)
    assert shlex.split(commands[0], comments=True) == ["make", "run"]
    at = next(i for i, c in enumerate(commands) if f"{example}.py" in c)
    for command in commands[1:at]:  # before the app starts: nothing to wait for
        shell(command, broker.address)
    app_args = shlex.split(commands[at].replace(".venv/bin/python", sys.executable),
                           comments=True)
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*app_args, "--bootstrap", broker.address, "--state-dir",
                                 str(tmp_path / "state")], stdout=out, stderr=subprocess.STDOUT)
    try:
        async def go() -> None:
            await until("the app running", lambda: f"{app_id} running" in log.read_text())
            # the produce commands, then the reads (a consume, or queries) whose output
            # the README shows
            rest = commands[at + 1:]
            steps = list(itertools.takewhile(lambda c: produced(c) is not None, rest))
            reads = rest[len(steps):]
            assert reads and not any(produced(c) for c in reads), rest
            for command in steps:
                shell(command, broker.address)
                target = produced(command)
                assert target is not None
                # The README's reader types one command after another, seconds apart:
                # here each waits until the app has taken the records in.
                await until(f"{command[:40]}... processed", functools.partial(
                    committed_to_end, broker.address, app_id, *target), timeout=60)
            got = [line for c in reads for line in shell(c, broker.address).splitlines()]
            assert sorted(got) == sorted(expected.splitlines()), got
            for key in {line.split("\t")[0] for line in got}:  # per key, in order
                assert [g for g in got if g.startswith(key + "\t")] == [
                    e for e in expected.splitlines() if e.startswith(key + "\t")]

        run(go())
    except BaseException:
        print(log.read_text())
        raise
    finally:
        terminate(proc, 20)
    assert proc.returncode == 0, log.read_text()
    assert f"{app_id} stopped" in log.read_text()
