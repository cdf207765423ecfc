"""Where resources' changes go, and the `odradek operator` command line."""

from __future__ import annotations

import pytest

from odradek.cli.main import build_parser, main
from odradek.operator import runtime
from odradek.operator.handlers.common import camel


def test_bootstrap_from_the_cluster_ref_or_the_override() -> None:
    spec = {"clusterRef": "events"}
    assert runtime.bootstrap_for("prod", spec, env={}) == "events-bootstrap.prod.svc:9092"
    assert runtime.bootstrap_for("prod", spec, env={"ODRADEK_BOOTSTRAP": "h:1"}) == "h:1"
    with pytest.raises(runtime.NoBootstrap):
        runtime.bootstrap_for("prod", {}, env={})


def test_resync_interval() -> None:
    assert runtime.resync_seconds({}) == 30
    assert runtime.resync_seconds({"ODRADEK_OPERATOR_RESYNC_S": "1.5"}) == 1.5
    assert runtime.roll_timeout_seconds({}) == 300
    assert runtime.roll_timeout_seconds({"ODRADEK_OPERATOR_ROLL_TIMEOUT_S": "5"}) == 5


def test_broker_reasons_become_condition_reasons() -> None:
    assert camel("INVALID_CONFIG") == "InvalidConfig"
    assert camel("") == "Unknown"


def test_operator_flags() -> None:
    args = build_parser().parse_args(["operator", "-n", "a", "-n", "b", "--metrics-port", "9",
                                      "--liveness-port", "8", "--peering", "odradek"])
    assert args.namespace == ["a", "b"] and not args.all_namespaces
    assert (args.metrics_port, args.liveness_port, args.peering) == (9, 8, "odradek")
    assert build_parser().parse_args(["operator", "-A"]).all_namespaces
    with pytest.raises(SystemExit):
        build_parser().parse_args(["operator", "-A", "-n", "x"])


def test_operator_needs_a_scope(monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ODRADEK_OPERATOR_NAMESPACES", raising=False)
    assert main(["operator"]) == 1
    assert "--namespace" in capsys.readouterr().err


async def test_the_operator_client_speaks_tls_once_a_cluster_has_it() -> None:
    """An Admin made before TLS was known is replaced; renewed files are rewritten in
    place (the client reads them at each new connection)."""
    brokers = runtime.Brokers()
    try:
        plain = brokers.admin("b:1")
        files = {"ca.crt": b"ca", "tls.crt": b"cert", "tls.key": b"key"}
        await brokers.use_tls("b:1", files, "c-0.c-brokers.ns.svc")
        secured = brokers.admin("b:1")
        assert secured is not plain and secured.cluster.tls is not None
        assert secured.cluster.tls.cert is not None
        # Whatever address the brokers are dialled at, their certificate names the pods.
        assert secured.cluster.tls.server_name == "c-0.c-brokers.ns.svc"
        assert secured.cluster.tls.cert.read_bytes() == b"cert"
        await brokers.use_tls("b:1", {**files, "tls.crt": b"renewed"}, "c-0.c-brokers.ns.svc")
        assert brokers.admin("b:1") is secured
        assert secured.cluster.tls.cert.read_bytes() == b"renewed"
    finally:
        await brokers.close()


def test_peering_priorities_are_drawn_below_kopf_dev() -> None:
    """Replicas share their flags, and kopf pauses every operator at a tie: each draws."""
    from odradek.operator.main import peering_priority

    drawn = {peering_priority() for _ in range(50)}
    assert len(drawn) > 45 and all(p < 0 for p in drawn)
