"""Helpers a broker pod runs besides the broker (`python -m odradek.cli.pod ...`):

- `health`: the readiness/liveness probe. Kubernetes' own gRPC probe cannot speak TLS, so
  a TLS listener is probed by this exec command: exit 0 when the broker says SERVING.
- `wait-file PATH`: an init container that waits until a downward API file is non-empty
  (the rack annotation the operator sets from the node's label), so the broker's
  environment, resolved when its container starts, has it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ENV_HOST = "ODRADEK_ADVERTISED_HOST"


def health(host: str, port: int, ca: str | None, cert: str | None, key: str | None,
           timeout_s: float) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from odradek.security.tls import ClientTLS

    target = f"{host}:{port}"
    if ca:
        tls = ClientTLS(Path(ca), Path(cert) if cert else None, Path(key) if key else None)
        channel = grpc.secure_channel(target, tls.credentials())
    else:
        channel = grpc.insecure_channel(target)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def wait_file(path: Path, timeout_s: float, interval_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return True
        time.sleep(interval_s)
    return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m odradek.cli.pod")
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("health", help="exit 0 when the broker is SERVING")
    # The broker listens on its pod's DNS name (the address it registers), not localhost.
    h.add_argument("--host", default=os.environ.get(ENV_HOST) or "127.0.0.1")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--tls-ca")
    h.add_argument("--tls-cert")
    h.add_argument("--tls-key")
    h.add_argument("--timeout-s", type=float, default=3.0)
    w = sub.add_parser("wait-file", help="exit 0 once PATH is non-empty")
    w.add_argument("path", type=Path)
    w.add_argument("--timeout-s", type=float, default=300.0)
    args = parser.parse_args(argv)
    if args.command == "health":
        ok = health(args.host, args.port, args.tls_ca, args.tls_cert, args.tls_key,
                    args.timeout_s)
    else:
        ok = wait_file(args.path, args.timeout_s)
        if not ok:
            print(f"{args.path} still empty after {args.timeout_s}s", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
