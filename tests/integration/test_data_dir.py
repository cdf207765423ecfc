"""A data directory belongs to one broker (real processes): a second process on it exits
at once with a clear message while the first keeps serving its data; a directory of
another broker id or of a cluster with other voters is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from odradek.records import encode_batch
from odradek.v1 import odradek_pb2 as pb
from tests.brokers import BrokerProcess, free_port
from tests.integration.test_crash import read_all

TOPIC = "owned"


def refused(data_dir: Path, *args: str) -> str:
    """Runs a broker that must refuse data_dir; its output."""
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "odradek.cli.main", "broker", "--host", "127.0.0.1",
         "--port", str(port), "--metrics-port", "0", "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, f"a broker started on a directory it must refuse:\n{result}"
    assert "Traceback" not in result.stderr
    return result.stderr


def test_a_directory_in_use_or_of_another_broker_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "broker-0"
    broker = BrokerProcess(data_dir, extra_args=["--broker-id", "0"]).start()
    try:
        with broker.health_channel() as channel:
            stub, admin = broker.stubs(channel)
            admin.CreateTopic(pb.CreateTopicRequest(name=TOPIC, partitions=1), timeout=30)
            stub.Produce(pb.ProduceRequest(topic=TOPIC, partition=0, records=encode_batch(
                [(0, None, b"v%d" % i) for i in range(10)])), timeout=30)
        before = read_all(broker.address, TOPIC)
        assert len(before) == 10

        message = refused(data_dir, "--broker-id", "0")
        assert f"data directory {data_dir} is in use by another broker process" in message
        assert f"(pid {broker.proc.pid})" in message  # type: ignore[union-attr]
        assert broker.serving()
        assert read_all(broker.address, TOPIC) == before
    finally:
        assert broker.stop() == 0

    message = refused(data_dir, "--broker-id", "1")
    assert "belongs to broker 0, not broker 1" in message
    voters = f"0=127.0.0.1:{free_port()},1=127.0.0.1:{free_port()},2=127.0.0.1:{free_port()}"
    message = refused(data_dir, "--broker-id", "0", "--voters", voters)
    assert "made for a cluster whose metadata voters are [0], not [0, 1, 2]" in message

    broker.start()  # its own directory, as before
    try:
        assert read_all(broker.address, TOPIC) == before
    finally:
        broker.stop()


def test_a_second_dev_cluster_on_one_directory_says_so(tmp_path: Path) -> None:
    data_dir = tmp_path / "dev"
    port = free_port()
    first = subprocess.Popen(
        [sys.executable, "-m", "odradek.cli.main", "dev", "--brokers", "1", "--port",
         str(port), "--metrics-port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert first.stdout is not None
        banner = ""
        while "ODRADEK_BOOTSTRAP" not in banner:  # bounded: the process ends or prints it
            line = first.stdout.readline()
            assert line, f"odradek dev exited:\n{banner}"
            banner += line
        # What the banner shows works at once: every broker is registered by then.
        made = subprocess.run(
            [sys.executable, "-m", "odradek.cli.main", "topic", "create", "right-away",
             "-b", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        second = subprocess.run(
            [sys.executable, "-m", "odradek.cli.main", "dev", "--brokers", "1", "--port",
             str(free_port()), "--metrics-port", "0", "--data-dir", str(data_dir)],
            capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert "is in use by another broker process" in second.stderr
        assert "another `odradek dev` on this directory?" in second.stderr
        assert first.poll() is None
    finally:
        first.terminate()
        first.wait(timeout=30)
