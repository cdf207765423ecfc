"""The examples' READMEs, run as written against a real broker: the app as a process, the
shell commands with `.venv/bin/odradek` as this interpreter's odradek command (and
ODRADEK_BOOTSTRAP pointing at the broker), the consumer's output compared with the
README's."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from odradek.client import Consumer, TopicPartition
from odradek.client.partitioner import partition_for_key
from tests.brokers import BrokerProcess
from tests.integration.test_streams import run, until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path / "b0").start()
    try:
        yield proc
    finally:
        proc.stop()


def readme_blocks(example: str) -> tuple[list[str], str]:
    """The README's shell commands (comments cut) and the output block after them."""
    text = (EXAMPLES / example / "README.md").read_text()
    blocks = re.findall(r"```(\w*)\n(.*?)```", text, re.S)
    shell = next(body for lang, body in blocks if lang == "sh")
    output = next(body for lang, body in blocks if lang == "")
    commands = [line.split("  #")[0].strip() for line in shell.splitlines()
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


def test_enrichment_readme(broker: BrokerProcess, tmp_path: Path) -> None:
    commands, expected = readme_blocks("enrichment")
    assert commands[0] == "make run" and "enrichment.py" in commands[1]
    app_args = shlex.split(commands[1].replace(".venv/bin/python", sys.executable))
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*app_args, "--bootstrap", broker.address, "--state-dir",
                                 str(tmp_path / "state")], stdout=out, stderr=subprocess.STDOUT)
    try:
        async def go() -> None:
            await until("the app running", lambda: "enrichment running" in log.read_text())
            customers, orders, consume = commands[2:]
            shell(customers, broker.address)
            # The README's reader types the orders after the customer: here, after the
            # app has taken the customer in.
            await until("the customer processed",
                        lambda: committed_to_end(broker.address, "enrichment", "customers", ["c1"]),
                        timeout=60)
            shell(orders, broker.address)
            await until("the orders processed",
                        lambda: committed_to_end(broker.address, "enrichment", "orders",
                                                     ["c1", "c2"]),
                        timeout=60)
            got = shell(consume, broker.address)
            assert sorted(got.splitlines()) == sorted(expected.splitlines()), got

        run(go())
    except BaseException:
        print(log.read_text())
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, log.read_text()
    assert "customers held here: 1" in log.read_text()
