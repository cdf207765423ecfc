"""The Dockerfile (no Docker engine here to build it): multi-stage, slim, one image whose
entry point is the `odradek` command, run as the non-root uid the chart and the operator's
broker pods use, with the operator's dependencies installed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from odradek.cli.main import build_parser
from odradek.operator import cluster as cl
from tests.helm.chart import ROOT, one, render

DOCKERFILE = ROOT / "Dockerfile"


def _stages() -> list[list[tuple[str, str]]]:
    """Instructions per stage, line continuations joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word.upper(), rest.strip()))
    return stages


def _last(stage: list[tuple[str, str]], instruction: str) -> str:
    return [rest for word, rest in stage if word == instruction][-1]


def test_multi_stage_and_slim() -> None:
    stages = _stages()
    assert len(stages) >= 2
    for stage in stages:
        assert "-slim" in stage[0][1], stage[0]
    final = stages[-1]
    runs = " ".join(rest for word, rest in final if word == "RUN")
    assert "build-essential" not in runs and "apt-get install" not in runs
    assert any(word == "COPY" and rest.startswith("--from=build") for word, rest in final)


def test_runs_as_the_uid_the_pods_use() -> None:
    user = _last(_stages()[-1], "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0  # numeric: runAsNonRoot can check it
    assert int(uid) == int(gid) == cl.BROKER_UID
    pod = cl.render_stateful_set(cl.desired({}, "x", "ns"), {
        "apiVersion": "odradek.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "x", "uid": "u"}})["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == int(uid)
    operator_pod = one(render(), "Deployment")["spec"]["template"]["spec"]
    assert operator_pod["securityContext"]["runAsUser"] == int(uid)


def test_one_image_two_entry_points() -> None:
    final = _stages()[-1]
    assert _last(final, "ENTRYPOINT") == '["odradek"]'
    # The default command is a broker invocation the CLI accepts.
    cmd = shlex.split(_last(final, "CMD").strip("[]").replace('",', '"'))
    args = build_parser().parse_args(cmd)
    assert args.command == "broker" and args.data_dir.startswith("/var/lib/odradek")
    # The operator's pods call the same `odradek` with `operator`; it needs the extra.
    build = " ".join(rest for word, rest in _stages()[0] if word == "RUN")
    assert "'.[operator]'" in build
    container = one(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["odradek"] and container["args"][0] == "operator"


def test_build_context_holds_what_the_build_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = {Path(p).as_posix().rstrip("/") for word, rest in _stages()[0] if word == "COPY"
              for p in rest.split()[:-1]}
    assert copied <= allowed and (ROOT / "odradek").is_dir()
