"""deploy/ holds plain manifests equal to the chart with its default values: committed
output of scripts/gen_manifests.py, and what kustomize builds from deploy/ is what
`helm install` (CRDs first, then the templates) creates, plus the Namespace."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.chart import NAMESPACE, ROOT, Doc, crds, render

DEPLOY = ROOT / "deploy"


def _gen() -> Any:
    spec = importlib.util.spec_from_file_location("gen_manifests",
                                                  ROOT / "scripts" / "gen_manifests.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _key(doc: Doc) -> tuple[str, str, str]:
    return (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])


def _by_key(docs: list[Doc]) -> dict[tuple[str, str, str], Doc]:
    keyed = {_key(d): d for d in docs}
    assert len(keyed) == len(docs), "two objects of one kind, namespace and name"
    return keyed


def _helm_install() -> dict[tuple[str, str, str], Doc]:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    return _by_key([namespace, *crds(), *render()])


def _kustomize_build(root: Path) -> list[Doc]:
    """What kustomize makes of deploy/kustomization.yaml, for the features it uses:
    resources as they are, and a ConfigMap per configMapGenerator entry (data from files
    keyed by base name, labels and annotations from options, no hash suffix)."""
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "configMapGenerator"}
    docs = [d for r in kustomization["resources"]
            for d in yaml.safe_load_all((root / r).read_text()) if d]
    for gen in kustomization.get("configMapGenerator", []):
        options = gen["options"]
        assert options["disableNameSuffixHash"] is True
        meta = {"name": gen["name"], "namespace": gen["namespace"], "labels": options["labels"]}
        if "annotations" in options:
            meta["annotations"] = options["annotations"]
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                     "data": {Path(f).name: (root / f).read_text() for f in gen["files"]}})
    return docs


def test_committed_manifests_are_fresh() -> None:
    for path, text in _gen().outputs().items():
        assert path.read_text() == text, (
            f"{path.relative_to(ROOT)} is stale: run `python scripts/gen_manifests.py`")


def test_kustomize_builds_what_helm_installs() -> None:
    built = _by_key(_kustomize_build(DEPLOY))
    assert built == _helm_install()


def test_a_changed_dashboard_shows(tmp_path: Path) -> None:
    # The comparison above reads the dashboards from deploy/grafana: a copy that differs
    # from the chart's files must not pass.
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, symlinks=True)
    dashboard = next((copy / "grafana").glob("*.json"))
    dashboard.write_text(dashboard.read_text().replace("odradek", "other", 1))
    assert _by_key(_kustomize_build(copy)) != _helm_install()


def test_kubectl_kustomize_agrees() -> None:
    """The real kustomize, where kubectl is installed (it is not a project dependency)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the Python build above still ran")
    result = subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    built = _by_key([d for d in yaml.safe_load_all(result.stdout) if d])
    assert built == _helm_install()
