"""`odradek`: topics, produce, consume, groups, bench, broker and dev."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import sys
from collections.abc import Sequence
from typing import cast

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
        group_cmds,
        operator_cmd,
        security_cmds,
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
    cluster_cmds.add_cluster_parsers(sub)
    security_cmds.add_security_parsers(sub)
    bench_cmd.add_bench_parser(sub)
    broker_cmd.add_broker_parser(sub)
    broker_cmd.add_dev_parser(sub)
    operator_cmd.add_operator_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from odradek.client.errors import OdradekError

    parser = build_parser()
    args = parse_strictly(parser, argv)
    try:
        result = args.func(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except OdradekError as exc:
        print(f"error: {exc.message} ({exc.reason})", file=sys.stderr)
        return 1
    except CliError as exc:
        suffix = f" ({exc.reason})" if exc.reason else ""
        print(f"error: {exc}{suffix}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
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
