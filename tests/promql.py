"""The metric names a PromQL expression, a dashboard or a rules file uses (tests only: a
small lexer, enough for the expressions in deploy/, not a PromQL parser)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.promtool import DEPLOY

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan"}
# Series Prometheus makes itself, not the brokers.
SYNTHETIC = {"up", "ALERTS", "ALERTS_FOR_STATE"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)")


def metric_names(expr: str) -> set[str]:
    e = _STRING.sub('""', expr)
    e = _MATCHERS.sub(" ", e)
    e = _RANGE.sub(" ", e)
    e = _LABEL_LIST.sub(" ", e)
    names = set()
    for match in _IDENT.finditer(e):
        word = match.group()
        rest = e[match.end():].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue  # a function or aggregation, or a keyword
        if match.start() > 0 and (e[match.start() - 1].isdigit() or e[match.start() - 1] in
                                  ".$"):
            continue  # the exponent of a number, or a Grafana variable
        names.add(word)
    return names


def dashboard_files() -> list[Path]:
    return sorted((DEPLOY / "grafana").glob("*.json"))


def rule_files() -> list[Path]:
    return [DEPLOY / "prometheus" / "rules.yml"]


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"]
            for target in panel.get("targets", []) if target.get("expr")]


def dashboard_variable_metrics(dashboard: dict[str, Any]) -> set[str]:
    names = set()
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        names.update(_LABEL_VALUES.findall(text))
    return names


def rule_exprs(path: Path) -> list[tuple[str, str]]:
    """(alert or record name, expression) of every rule in a rules file."""
    data = yaml.safe_load(path.read_text())
    return [(rule.get("alert") or rule.get("record"), rule["expr"])
            for group in data["groups"] for rule in group["rules"]]


def all_exprs() -> list[tuple[str, str]]:
    """(where, expression) for every dashboard panel target and every rule."""
    out = []
    for path in dashboard_files():
        dashboard = json.loads(path.read_text())
        out += [(f"{path.name}", expr) for expr in dashboard_exprs(dashboard)]
    for path in rule_files():
        out += [(f"{path.name}:{name}", expr) for name, expr in rule_exprs(path)]
    return out


def used_metric_names() -> dict[str, set[str]]:
    """Metric name -> where it is used, over every dashboard and rules file."""
    used: dict[str, set[str]] = {}
    for where, expr in all_exprs():
        for name in metric_names(expr):
            used.setdefault(name, set()).add(where)
    for path in dashboard_files():
        for name in dashboard_variable_metrics(json.loads(path.read_text())):
            used.setdefault(name, set()).add(f"{path.name} (variable)")
    return used
