"""deploy/grafana dashboards and deploy/prometheus rules against a real broker: every
metric they use is one the broker exports, and the broker's /metrics text passes
`promtool check metrics`."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from odradek.records.builder import BatchBuilder
from odradek.security.certs import make_pki
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc
from tests.brokers import BrokerProcess, client_tls, commit_group_offsets, tls_args
from tests.promql import SYNTHETIC, dashboard_exprs, dashboard_files, used_metric_names
from tests.promtool import ROOT, require

UIDS = {"cluster-overview.json": "odradek-cluster-overview", "topics.json": "odradek-topics",
        "replication.json": "odradek-replication",
        "consumer-groups.json": "odradek-consumer-groups"}


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The /metrics text of a broker that has served some produce, fetch and bad requests.
    It listens with TLS, so that the certificate metrics are there too."""
    pki = make_pki(tmp_path_factory.mktemp("dash-pki"))
    broker = BrokerProcess(tmp_path_factory.mktemp("dash") / "data", extra_args=tls_args(pki),
                           tls=client_tls(pki)).start()
    try:
        with broker.health_channel() as channel:
            data, admin = pb_grpc.BrokerStub(channel), pb_grpc.AdminStub(channel)
            admin.CreateTopic(pb.CreateTopicRequest(name="d", partitions=2,
                                                    configs={"flush.messages": "1"}), timeout=10)
            builder = BatchBuilder()
            builder.append(1000, b"k", b"v")
            data.Produce(pb.ProduceRequest(topic="d", partition=0, records=builder.build()),
                         timeout=10)
            data.Fetch(pb.FetchRequest(topic="d", partition=0, offset=0), timeout=10)
            with pytest.raises(grpc.RpcError):
                data.Fetch(pb.FetchRequest(topic="missing", partition=0), timeout=10)
        commit_group_offsets([broker], "dash", "d", {0: 0})
        yield broker.scrape()
    finally:
        broker.stop()


def exported_names(text: str) -> set[str]:
    """Every series name the text has, or would have for a family shown without samples."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"],
                    "summary": ["_sum", "_count"]}.get(family.type, [])
        names.update(family.name + suffix for suffix in suffixes)
    return names


def test_dashboards_have_stable_uids_and_a_datasource_variable() -> None:
    files = {path.name: path for path in dashboard_files()}
    assert set(files) == set(UIDS)
    for name, path in files.items():
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] == UIDS[name]
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        for panel in dashboard["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
        assert dashboard_exprs(dashboard)


def test_dashboards_are_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("gen_dashboards",
                                                  ROOT / "scripts" / "gen_dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, text in module.render().items():
        path = ROOT / "deploy" / "grafana" / name
        assert path.read_text() == text, f"{name} is stale: run scripts/gen_dashboards.py"


def test_every_metric_in_dashboards_and_rules_is_exported(scraped: str) -> None:
    used = used_metric_names()
    assert len(used) > 20
    exported = exported_names(scraped)
    missing = {name: sorted(where) for name, where in used.items()
               if name not in exported and name not in SYNTHETIC}
    assert not missing, f"used but not exported by a broker: {missing}"


def test_promtool_check_metrics_passes(scraped: str) -> None:
    result = subprocess.run([require("promtool"), "check", "metrics"], input=scraped,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promql_lexer_finds_metrics_not_labels_or_functions() -> None:
    from tests.promql import metric_names
    expr = ('histogram_quantile(0.99, sum by (le, method) (rate(a_bucket{job="x", '
            'instance=~"$instance"}[$__rate_interval]))) / on (topic) group_left '
            'max by (topic) (b) > 1e3 and c offset 5m')
    assert metric_names(expr) == {"a_bucket", "b", "c"}


def test_names_are_checked_against_a_real_scrape(scraped: str) -> None:
    assert "odradek_rpc_errors_total" in exported_names(scraped)
    assert Path(ROOT / "deploy" / "prometheus" / "rules.yml").exists()
