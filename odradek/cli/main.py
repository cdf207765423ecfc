"""`odradek`: topics, produce, consume, groups, bench, broker and dev."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, cast

from odradek.cli.common import CliError, StrictParser, parse_strictly


def _version() -> str:
    try:
        return importlib.metadata.version("odradek")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown (not installed)"


def build_parser() -> StrictParser:
    from odradek.cli import (
        bench_cmd,
        broker_cmd,
        client_cmds,
        cluster_cmds,
        completion,
        group_cmds,
        operator_cmd,
        security_cmds,
        streams_cmd,
    )

    parser = StrictParser(prog="odradek", description="Odradek: an event streaming platform.")
    parser.add_argument("--version", action="version", version=f"odradek {_version()}")
    # Subparsers are StrictParsers too; the helpers only need ArgumentParser's API.
    sub = cast("argparse._SubParsersAction[argparse.ArgumentParser]",
               parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    client_cmds.add_topic_parser(sub)
    client_cmds.add_produce_parser(sub)
    client_cmds.add_consume_parser(sub)
    group_cmds.add_group_parser(sub)
    streams_cmd.add_streams_parser(sub)
    cluster_cmds.add_cluster_parsers(sub)
    security_cmds.add_security_parsers(sub)
    bench_cmd.add_bench_parser(sub)
    broker_cmd.add_broker_parser(sub)
    broker_cmd.add_dev_parser(sub)
    operator_cmd.add_operator_parser(sub)
    completion.add_completion_parser(sub)
    return parser


def connection_hint(args: argparse.Namespace, message: str) -> str | None:
    """What to try when a broker closed the connection during the handshake: a TLS
    listener meets a plaintext client, or asks for a client certificate it was not given.
    gRPC says only `Socket closed` (or names the handshake) in both cases."""
    if "security handshaker" in message:  # gRPC could not use the client's own files
        return ("hint: the client's TLS files do not fit together: is --tls-key the key of "
                "--tls-cert, and are both PEM?")
    if not any(word in message for word in ("Socket closed", "handshake", "SSL", "TLS")):
        return None
    env = os.environ.get
    tls = any(getattr(args, name, None) for name in ("tls", "tls_ca", "tls_cert")) \
        or env("ODRADEK_TLS") == "1" or bool(env("ODRADEK_TLS_CA") or env("ODRADEK_TLS_CERT"))
    if not tls:
        return ("hint: the broker may speak TLS only: add --tls, with --tls-ca PEM when its "
                "CA is not a system root, and --tls-cert PEM --tls-key PEM for mutual TLS")
    if not (getattr(args, "tls_cert", None) or env("ODRADEK_TLS_CERT")):
        return ("hint: the broker may require a client certificate (mutual TLS): add "
                "--tls-cert PEM --tls-key PEM")
    return ("hint: check that --tls-ca signs the broker's certificate and that the broker "
            "trusts --tls-cert")


async def until_terminated(command: Coroutine[Any, Any, Any]) -> Any:
    """Runs a command; SIGTERM (kill, docker stop, Kubernetes) cancels it, so that the
    `async with` blocks close what they opened (a group member leaves its group at once
    instead of holding its partitions for a session timeout). Exits 143, as killed by
    SIGTERM would."""
    task = asyncio.current_task()
    assert task is not None
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
    try:
        return await command
    except asyncio.CancelledError:
        if not terminated:
            raise
        return 128 + signal.SIGTERM


def main(argv: Sequence[str] | None = None) -> int:
    from odradek.client.errors import OdradekError
    from odradek.security.tls import TLSConfigError

    parser = build_parser()
    args = parse_strictly(parser, argv)
    try:
        result = args.func(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(until_terminated(result))
        return int(result or 0)
    except OdradekError as exc:
        print(f"error: {exc.message} ({exc.reason})", file=sys.stderr)
        hint = connection_hint(args, exc.message) if exc.reason == "UNAVAILABLE" else None
        if hint:
            print(hint, file=sys.stderr)
        return 1
    except TLSConfigError as exc:
        print(f"error: {exc} (--tls-ca, --tls-cert, --tls-key)", file=sys.stderr)
        return 1
    except CliError as exc:
        suffix = f" ({exc.reason})" if exc.reason else ""
        print(f"error: {exc}{suffix}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)  # end the line ^C was echoed on
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly.
        try:
            sys.stdout = open("/dev/null", "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
