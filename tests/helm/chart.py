"""The chart rendered offline (helm-python-sdk: Helm 4's own code, no helm binary) and a
validator for whatever it renders: built-in kinds with kubernetes-validate in strict mode,
kinds whose CRD the chart installs against that CRD's schema, and the Prometheus
Operator's and cert-manager's kinds against models generated from their CRDs."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pydantic
import yaml

from tests.unit.test_operator_crds import _json_schema

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "odradek"
RELEASE = "odradek"
NAMESPACE = "odradek"
Doc = dict[str, Any]

helm.disable_logging()  # every .Files read through a link logs a line otherwise


@functools.cache
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render_files(values: Mapping[str, Any] | None = None, name: str = RELEASE,
                 namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` gives them (NOTES.txt too)."""
    return chart().render(values=dict(values or {}), name=name, namespace=namespace,
                          is_install=True)


def documents(rendered: Mapping[str, str]) -> list[Doc]:
    docs: list[Doc] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def render(values: Mapping[str, Any] | None = None, name: str = RELEASE,
           namespace: str = NAMESPACE) -> list[Doc]:
    return documents(render_files(values, name, namespace))


def crds() -> list[Doc]:
    """The CRDs of the chart's crds/ directory (installed before the templates)."""
    return [d for f in chart().crds for d in yaml.safe_load_all(f["data"]) if d]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str) -> Doc:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


@functools.cache
def _crd_validators() -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    validators = {}
    for crd in crds():
        spec = crd["spec"]
        for version in spec["versions"]:
            schema = _json_schema(version["schema"]["openAPIV3Schema"])
            validators[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = (
                jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker()))
    return validators


def _third_party_models() -> dict[tuple[str, str], Any]:
    from cloudcoil.models.cert_manager import v1 as cert_manager
    from cloudcoil.models.prometheus_operator import v1 as prometheus_operator

    return {("monitoring.coreos.com/v1", k): getattr(prometheus_operator, k)
            for k in ("ServiceMonitor", "PodMonitor", "PrometheusRule")} | {
            ("cert-manager.io/v1", k): getattr(cert_manager, k)
            for k in ("Certificate", "Issuer", "ClusterIssuer")}


def _unknown_fields(given: Any, kept: Any, where: str = "") -> Iterator[str]:
    """Fields of `given` that the model did not keep: the models ignore what their CRD
    does not define, so a round trip shows them."""
    if isinstance(given, dict) and isinstance(kept, dict):
        for key, value in given.items():
            if key not in kept:
                yield f"{where}.{key}"
            else:
                yield from _unknown_fields(value, kept[key], f"{where}.{key}")
    elif isinstance(given, list) and isinstance(kept, list):
        for i, (a, b) in enumerate(zip(given, kept, strict=False)):
            yield from _unknown_fields(a, b, f"{where}[{i}]")


def validate(doc: Doc) -> list[str]:
    """Problems with one manifest (empty: valid)."""
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    if key in _crd_validators():
        return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                for e in _crd_validators()[key].iter_errors(doc)]
    models = _third_party_models()
    if key in models:
        try:
            model = models[key].model_validate(doc)
        except pydantic.ValidationError as exc:
            return [str(exc)]
        kept = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
        return [f"{path}: not in the {key[1]} CRD" for path in _unknown_fields(doc, kept)]
    try:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [str(exc)]
    return []


def dump(docs: list[Doc]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=True)
