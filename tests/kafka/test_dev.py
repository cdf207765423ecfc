"""`odradek dev --brokers 3` turns the Kafka listener on for every broker and prints the
bootstrap list, which kcat can use as printed."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from odradek.cli.dev_cluster import dev_settings, kafka_banner
from tests.brokers import free_port, wait_until


def test_dev_brokers_get_consecutive_kafka_ports(tmp_path: Path) -> None:
    settings = dev_settings(tmp_path, "127.0.0.1", 9092, 3, 0, first_kafka_port=11092)
    assert [s.kafka_port for s in settings] == [11092, 11093, 11094]
    assert [s.kafka_port for s in dev_settings(tmp_path, "127.0.0.1", 9092, 2)] == [None, None]
    assert "bootstrap a:1,b:2" in kafka_banner(["a:1", "b:2"]) and kafka_banner([]) == ""


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_odradek_dev_prints_a_kafka_bootstrap_that_works(tmp_path: Path) -> None:
    port, kafka = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "odradek.cli.main", "dev", "--brokers", "3", "--port",
         str(port), "--kafka-port", str(kafka), "--metrics-port", "0", "--data-dir",
         str(tmp_path / "dev")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("Kafka clients: bootstrap" in line for line in lines), 90,
                   "the dev banner")
        boot = next(line for line in lines if "Kafka clients: bootstrap" in line).split()[-1]
        assert boot == ",".join(f"127.0.0.1:{kafka + i}" for i in range(3))
        listing = subprocess.run(["kcat", "-b", boot, "-L"], capture_output=True, text=True,
                                 timeout=30, check=True).stdout
        assert " 3 brokers:" in listing
        for i in range(3):
            assert f"broker {i} at 127.0.0.1:{kafka + i}" in listing
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=10)
