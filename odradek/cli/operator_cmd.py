"""`odradek operator`: flags here, the work in odradek.operator (imported when it runs)."""

from __future__ import annotations

import argparse
import logging
import os

from odradek.cli.common import CliError


def add_operator_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    env = os.environ.get
    p = sub.add_parser("operator", help="run the Kubernetes operator",
                       description="Reconciles Cluster, Topic, ConsumerGroup and User "
                                   "resources (odradek.io/v1alpha1).")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[], metavar="NS",
                       help="a namespace (or glob) to serve; repeatable (env "
                            "ODRADEK_OPERATOR_NAMESPACES, comma-separated)")
    scope.add_argument("--all-namespaces", "-A", action="store_true",
                       help="serve every namespace")
    p.add_argument("--liveness-port", type=int,
                   default=int(env("ODRADEK_OPERATOR_LIVENESS_PORT") or 0) or None,
                   help="serve kopf's liveness probe at :PORT/healthz")
    p.add_argument("--metrics-port", type=int,
                   default=int(env("ODRADEK_OPERATOR_METRICS_PORT") or 0) or None,
                   help="serve Prometheus metrics at :PORT/metrics")
    p.add_argument("--peering", default=env("ODRADEK_OPERATOR_PEERING") or None,
                   help="KopfPeering name: leader election between operator replicas "
                        "(default: standalone)")
    p.add_argument("--log-level", default=(env("ODRADEK_LOG_LEVEL") or "INFO").upper(),
                   type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        from odradek.operator.main import run
    except ModuleNotFoundError as exc:
        raise CliError(f"the operator needs the `operator` extra ({exc})", "UNAVAILABLE") from None
    namespaces = args.namespace or [
        n.strip() for n in (os.environ.get("ODRADEK_OPERATOR_NAMESPACES") or "").split(",")
        if n.strip()]
    if not namespaces and not args.all_namespaces:
        raise CliError("give --namespace NS (repeatable) or --all-namespaces")
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(namespaces, args.all_namespaces, args.liveness_port, args.metrics_port, args.peering)
    return 0
