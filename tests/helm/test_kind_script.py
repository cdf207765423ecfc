"""scripts/kind-e2e.sh cannot run here (no Docker engine); what can be checked without it:
it parses, its --set values are ones the chart takes, and the objects it waits for are
the ones the chart and the examples make."""

from __future__ import annotations

import re
import shutil
import subprocess

import helm_python as helm
import pytest

from tests.helm.chart import ROOT, of_kind, one, render

SCRIPT = ROOT / "scripts" / "kind-e2e.sh"


def test_script_parses() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    result = subprocess.run([bash, "-n", str(SCRIPT)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr


def test_its_values_render_and_name_what_it_waits_for() -> None:
    text = SCRIPT.read_text()
    values: dict[str, object] = {}
    for expression in re.findall(r"--set (\S+)", text):
        expression = expression.replace('"$TAG"', "e2e")
        merged = helm.parse_set_string(expression)
        values = _merge(values, merged)
    assert values["image"] == {"tag": "e2e", "pullPolicy": "Never"}
    docs = render(values)
    assert one(docs, "Deployment")["metadata"]["name"] == "odradek-operator"
    cluster = one(docs, "Cluster")
    assert cluster["metadata"]["name"] == "odradek"
    assert cluster["spec"]["image"] == "odradek:e2e"
    assert "deploy/odradek-operator" in text and "clusters.odradek.io/odradek" in text
    assert any(s["metadata"]["name"] == "odradek-operator-metrics"
               for s in of_kind(docs, "Service"))
    users = (ROOT / "deploy" / "examples" / "users.yaml").read_text()
    assert "name: billing" in users and "clusterRef: events" in users


def _merge(a: dict[str, object], b: dict[str, object]) -> dict[str, object]:
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)  # type: ignore[arg-type]
        else:
            out[key] = value
    return out
