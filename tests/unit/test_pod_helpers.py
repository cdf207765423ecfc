"""The pod helpers: the exec probe says no without a SERVING broker; the init container's
wait ends when the downward API file has content, and fails when it stays empty."""

from __future__ import annotations

from pathlib import Path

from odradek.cli import pod
from tests.brokers import free_port


def test_wait_file(tmp_path: Path) -> None:
    path = tmp_path / "rack"
    assert pod.main(["wait-file", str(path), "--timeout-s", "0.1"]) == 1
    path.write_text("")
    assert not pod.wait_file(path, 0.1, interval_s=0.02)
    path.write_text("eu-1a")
    assert pod.main(["wait-file", str(path), "--timeout-s", "5"]) == 0


def test_health_without_a_broker() -> None:
    assert pod.main(["health", "--host", "127.0.0.1", "--port", str(free_port()),
                     "--timeout-s", "0.5"]) == 1
