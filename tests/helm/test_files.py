"""The chart's CRDs, dashboards and rules are the very files of deploy/: the chart links to
them (helm/odradek/crds/*.yaml and files/{grafana,prometheus} are symbolic links into
deploy/), and what it renders from them is their content unchanged. Every alert links a
runbook entry that exists in docs/operations.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.helm.chart import CHART, ROOT, chart, of_kind, one, render

DEPLOY = ROOT / "deploy"
OPERATIONS = ROOT / "docs" / "operations.md"


def test_chart_files_are_links_into_deploy() -> None:
    links = {CHART / "files" / "grafana": DEPLOY / "grafana",
             CHART / "files" / "prometheus": DEPLOY / "prometheus"}
    links |= {CHART / "crds" / p.name: p for p in (DEPLOY / "crds").glob("*.yaml")}
    links[CHART / "crds" / "kopf-peerings.yaml"] = DEPLOY / "kopf" / "peerings.yaml"
    for link, target in links.items():
        assert link.is_symlink() and link.resolve() == target.resolve(), link
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == sorted(
        p.name for p in links if p.parent.name == "crds")


def test_crds_are_the_deploy_files() -> None:
    loaded = {f["filename"] if "filename" in f else f["name"]: f["data"] for f in chart().crds}
    expected = {p.name: p.read_text() for p in (DEPLOY / "crds").glob("*.yaml")}
    expected["kopf-peerings.yaml"] = (DEPLOY / "kopf" / "peerings.yaml").read_text()
    assert {Path(name).name: data for name, data in loaded.items()} == expected


def test_dashboards_are_the_deploy_files() -> None:
    maps = of_kind(render(), "ConfigMap")
    rendered = {key: value for cm in maps for key, value in cm["data"].items()}
    expected = {p.name: p.read_text() for p in sorted((DEPLOY / "grafana").glob("*.json"))}
    assert rendered == expected  # byte for byte, through YAML's string quoting
    for name, text in rendered.items():
        assert json.loads(text)["uid"].startswith("odradek-"), name


def test_prometheus_rule_is_the_deploy_file() -> None:
    rule = one(render({"metrics": {"prometheusRule": {"enabled": True}}}), "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())


def _alerts() -> list[dict[str, object]]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)}


def test_every_alert_links_its_runbook_entry() -> None:
    anchors = _anchors(OPERATIONS.read_text())
    alerts = _alerts()
    assert alerts
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]  # type: ignore[index]
        page, _, anchor = str(url).partition("#")
        assert page == "docs/operations.md", alert["alert"]
        assert anchor == str(alert["alert"]).lower() and anchor in anchors, alert["alert"]


def test_packaged_chart_carries_the_files(tmp_path: Path) -> None:
    """`helm package` follows the links: the archive renders the same as the directory,
    so a published chart holds the dashboards, rules and CRDs themselves."""
    import helm_python as helm

    from tests.helm.chart import documents

    archive = helm.package(CHART, destination=tmp_path)
    values = {"metrics": {"prometheusRule": {"enabled": True}}}
    with helm.Chart.load(archive) as packaged:
        rendered = packaged.render(values=values, name="odradek", namespace="odradek",
                                   is_install=True)
        assert sorted(f["data"] for f in packaged.crds) == sorted(
            f["data"] for f in chart().crds)
    assert documents(rendered) == render(values)
