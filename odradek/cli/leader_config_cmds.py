"""`odradek cluster elect-leaders` (kafka-leader-election.sh --election-type preferred) and
`odradek cluster describe-configs` (kafka-configs.sh --describe --entity-type brokers) and
`odradek cluster alter-configs` (kafka-configs.sh --alter --entity-type brokers
--entity-default)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from odradek.cli.common import CliError, add_config_flag, add_json_flag, tls_options
from odradek.client import Admin
from odradek.client.types import BrokerConfig, ElectionResult


def add_leader_config_parsers(csub: argparse._SubParsersAction[argparse.ArgumentParser],
                              parent: argparse.ArgumentParser) -> None:
    p = csub.add_parser(
        "elect-leaders", parents=[parent],
        help="hand each partition's leadership to its preferred (first) replica",
        description="Preferred-leader election, as kafka-leader-election.sh --election-type "
                    "preferred: the leader of each partition hands over to the partition's "
                    "first replica when that one is in sync. Exit status 0 when every "
                    "partition ends led by its preferred replica.")
    p.add_argument("--topic", help="only this topic's partitions (default: every partition)")
    p.add_argument("--partition", type=int, action="append", metavar="P",
                   help="only this partition of --topic (repeatable)")
    p.add_argument("--timeout-ms", type=int, default=10_000, metavar="MS",
                   help="how long each handover may take (default %(default)s)")
    add_json_flag(p)
    p.set_defaults(func=_elect)

    p = csub.add_parser(
        "describe-configs", parents=[parent],
        help="a broker's settings, each with its source (default, static or dynamic)",
        description="Prints the settings of the brokers named (default: every broker): "
                    "each flag and topic-config default, its value, and whether it was set "
                    "at start-up (static: flag or environment), cluster-wide at run time "
                    "(dynamic: alter-configs) or left at its default.")
    p.add_argument("broker_ids", nargs="*", type=int, metavar="BROKER_ID")
    p.add_argument("--all", action="store_true",
                   help="also the settings left at their defaults (shown: only set ones)")
    add_json_flag(p)
    p.set_defaults(func=_describe_configs)

    p = csub.add_parser(
        "alter-configs", parents=[parent],
        help="set cluster-wide topic config defaults, live (no restart)",
        description="Cluster-wide topic config defaults, kept in the cluster metadata: they "
                    "lie over every broker's --config defaults and apply at once to every "
                    "topic that does not set the config itself. Prints the complete set.")
    add_config_flag(p, "topic config default to set, e.g. retention.ms=86400000")
    p.add_argument("--delete-config", action="append", default=[], metavar="KEY",
                   help="cluster-wide default to remove (repeatable)")
    p.add_argument("--validate-only", action="store_true", help="check, change nothing")
    add_json_flag(p)
    p.set_defaults(func=_alter_configs)


async def _alter_configs(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        if not args.config and not args.delete_config:
            configs = await admin.describe_cluster_configs()
        else:
            configs = await admin.alter_cluster_configs(args.config, args.delete_config,
                                                        args.validate_only)
    if args.json:
        sys.stdout.write(json.dumps(configs, sort_keys=True) + "\n")
        return 0
    if args.validate_only:
        sys.stdout.write("valid (not applied); the set would be:\n")
    if not configs:
        sys.stdout.write("no cluster-wide topic defaults (each broker's --config applies)\n")
    for key, value in sorted(configs.items()):
        sys.stdout.write(f"{key}={value}\n")
    return 0


async def _elect(args: argparse.Namespace) -> int:
    if args.partition and not args.topic:
        raise CliError("--partition needs --topic")
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        wanted: list[tuple[str, int]] | None = None
        if args.topic:
            parts = args.partition or range(len(
                (await admin.describe_topic(args.topic)).partitions))
            wanted = [(args.topic, p) for p in parts]
        results = await admin.elect_leaders(wanted, args.timeout_ms)
    if args.json:
        sys.stdout.write(json.dumps([dataclasses.asdict(r) for r in results]) + "\n")
    else:
        _print_elections(results)
    return 0 if all(r.outcome != "failed" for r in results) else 1


def _print_elections(results: list[ElectionResult]) -> None:
    if not results:
        return
    width = max(5, *(len(r.topic) for r in results))
    sys.stdout.write(f"{'TOPIC':<{width}}  PARTITION  LEADER  OUTCOME\n")
    for r in results:
        leader = str(r.leader) if r.leader >= 0 else "-"
        outcome = r.outcome if r.outcome != "failed" else f"failed: {r.message} ({r.reason})"
        sys.stdout.write(f"{r.topic:<{width}}  {r.partition:>9}  {leader:>6}  {outcome}\n")


async def _describe_configs(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        ids = args.broker_ids or [b.id for b in (await admin.metadata()).brokers]
        described = {b: await admin.describe_broker_configs(b) for b in ids}
    shown = {b: [c for c in configs if args.all or c.source != "default"]
             for b, configs in described.items()}
    if args.json:
        sys.stdout.write(json.dumps([{"broker_id": b, "configs": [dataclasses.asdict(c)
                                                                  for c in configs]}
                                     for b, configs in shown.items()]) + "\n")
        return 0
    for i, (b, configs) in enumerate(shown.items()):
        if i:
            sys.stdout.write("\n")
        _print_configs(b, configs)
    return 0


def _print_configs(broker_id: int, configs: list[BrokerConfig]) -> None:
    sys.stdout.write(f"Broker {broker_id}:\n")
    if not configs:
        sys.stdout.write("\t(every setting at its default; --all lists them)\n")
    for c in configs:
        value = "(hidden)" if c.sensitive else c.value
        sys.stdout.write(f"\t{c.name}={value}\t({c.source})\n")
