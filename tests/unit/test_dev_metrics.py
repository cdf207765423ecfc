"""`odradek dev`: metrics ports and the Prometheus configuration it writes."""

from __future__ import annotations

from pathlib import Path

from odradek.cli.broker_run import metrics_port
from odradek.cli.dev_cluster import default_rule_files, dev_settings, prometheus_config


def test_metrics_port_defaults_to_grpc_port_plus_1000() -> None:
    assert metrics_port(-1, 9092) == 10092
    assert metrics_port(0, 9092) == 0
    assert metrics_port(9500, 9092) == 9500


def test_dev_brokers_get_consecutive_metrics_ports(tmp_path: Path) -> None:
    settings = dev_settings(tmp_path, "127.0.0.1", 9092, 3, 10092)
    assert [s.metrics_port for s in settings] == [10092, 10093, 10094]
    assert [s.metrics_port for s in dev_settings(tmp_path, "127.0.0.1", 9092, 2, 0)] == [0, 0]


def test_prometheus_config_lists_targets_and_rules() -> None:
    text = prometheus_config(["127.0.0.1:10092", "127.0.0.1:10093"], default_rule_files())
    assert "targets: ['127.0.0.1:10092', '127.0.0.1:10093']" in text
    assert "job_name: odradek" in text
    assert "rule_files:\n  []" in prometheus_config(["h:1"], [])
