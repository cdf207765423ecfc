"""deploy/prometheus: the alert rules are valid and pass their promtool unit tests; the
configuration `odradek dev --prometheus` writes is valid."""

from __future__ import annotations

import subprocess
from pathlib import Path

from odradek.cli.dev_cluster import default_rule_files, prometheus_config
from tests.promtool import DEPLOY, require

RULES = DEPLOY / "prometheus" / "rules.yml"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("promtool"), *args], capture_output=True, text=True,
                          timeout=60, cwd=RULES.parent)


def test_rules_are_valid() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_unit_tests_pass() -> None:
    result = _promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_dev_prometheus_config_is_valid(tmp_path: Path) -> None:
    assert default_rule_files() == [RULES]
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_config(["127.0.0.1:10092", "127.0.0.1:10093"],
                                        default_rule_files()))
    result = _promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
