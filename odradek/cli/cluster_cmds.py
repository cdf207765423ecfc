"""`odradek cluster describe|health|drain` and `odradek partition reassign` (elect-leaders
and describe-configs: cli/leader_config_cmds.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterable

from odradek.cli.common import (
    CliError,
    add_json_flag,
    bootstrap_parent,
    message_json,
    tls_options,
)
from odradek.cli.leader_config_cmds import add_leader_config_parsers
from odradek.client import Admin, Metadata
from odradek.client.types import PartitionInfo, to_dict


def add_cluster_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parent = bootstrap_parent()
    cluster = sub.add_parser("cluster", help="describe the cluster and its brokers' "
                             "configs, drain a broker, elect preferred leaders")
    csub = cluster.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    p = csub.add_parser("describe", parents=[parent], help="brokers and the controller")
    p.add_argument("--wait-for", type=int, action="append", default=[], metavar="BROKER_ID",
                   help="first wait until this broker has registered, e.g. one just "
                        "started (repeatable; fails after --wait-timeout-s)")
    p.add_argument("--wait-timeout-s", type=float, default=60, metavar="S",
                   help="how long --wait-for waits (default %(default)s)")
    add_json_flag(p)
    p.set_defaults(func=_describe)
    p = csub.add_parser(
        "health", parents=[parent],
        help="exit 0 only when a controller is elected and every partition has a leader "
             "and all its replicas in sync (as rpk cluster health)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_health)
    p = csub.add_parser("drain", parents=[parent],
                        help="move every replica off a broker (before removing it)")
    p.add_argument("broker_id", type=int)
    p.add_argument("--dry-run", action="store_true", help="print the moves, change nothing")
    add_json_flag(p)
    p.set_defaults(func=_drain)
    add_leader_config_parsers(csub, parent)

    partition = sub.add_parser("partition", help="move a partition's replicas")
    psub = partition.add_subparsers(dest="partition_command", metavar="ACTION", required=True)
    p = psub.add_parser("reassign", parents=[parent],
                        help="move a partition to the given brokers, one change at a time")
    p.add_argument("topic")
    p.add_argument("partition", type=int)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--replicas", metavar="ID,ID,...",
                      help="target brokers; the first becomes the preferred leader")
    what.add_argument("--status", action="store_true",
                      help="show the partition's replicas and the reassignment under way")
    p.add_argument("--dry-run", action="store_true", help="check, change nothing")
    p.add_argument("--wait", action="store_true",
                   help="return once the partition has moved (or with --status: once no "
                        "reassignment runs), within --wait-timeout-s")
    p.add_argument("--wait-timeout-s", type=float, default=120, metavar="S",
                   help="how long --wait waits (default %(default)s)")
    p.set_defaults(func=_reassign)


async def _describe(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.wait_timeout_s
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        meta = await admin.metadata()
        while missing := sorted(set(args.wait_for) - {b.id for b in meta.brokers}):
            if loop.time() > deadline:
                raise CliError(f"broker(s) {_ids(missing)} did not register within "
                               f"{args.wait_timeout_s:g}s", "BROKER_NOT_AVAILABLE")
            await asyncio.sleep(0.2)  # registration takes a metadata commit: poll
            meta = await admin.metadata()
    if args.json:
        print(json.dumps({"cluster_id": meta.cluster_id, "controller_id": meta.controller_id,
                          "brokers": [to_dict(b) for b in meta.brokers]}, indent=2))
        return 0
    print(f"Cluster: {meta.cluster_id}\tController: {meta.controller_id}")
    for b in meta.brokers:
        rack = f"\tRack: {b.rack}" if b.rack else ""
        print(f"\tBroker: {b.id}\t{b.host}:{b.port}{rack}")
    return 0


def health_problems(meta: Metadata) -> dict[str, list[str]]:
    """What keeps the cluster from being healthy: no controller, partitions without a
    leader, partitions with a replica out of sync (internal topics included)."""
    leaderless, under = [], []
    for topic in meta.topics:
        for p in topic.partitions:
            name = f"{topic.name}-{p.partition}"
            if p.leader < 0:
                leaderless.append(name)
            elif set(p.in_sync_replicas) != set(p.replicas):
                out = sorted(set(p.replicas) - set(p.in_sync_replicas))
                under.append(f"{name} (out of sync: {_ids(out)})")
    problems = {"leaderless_partitions": leaderless, "under_replicated_partitions": under}
    if meta.controller_id < 0:
        problems["controller"] = ["no controller elected"]
    return {k: v for k, v in problems.items() if v}


async def _health(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        meta = await admin.metadata()
    problems = health_problems(meta)
    if args.json:
        print(json.dumps({"healthy": not problems, "controller_id": meta.controller_id,
                          "brokers": [b.id for b in meta.brokers], **problems}, indent=2))
    else:
        print(f"Healthy: {'yes' if not problems else 'no'}")
        print(f"Controller: {meta.controller_id if meta.controller_id >= 0 else 'none'}")
        print(f"Brokers: {_ids(b.id for b in meta.brokers)}")
        for what, items in problems.items():
            print(f"{what.replace('_', ' ').capitalize()}: {', '.join(items)}")
    return 0 if not problems else 1


async def _drain(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        reply = await admin.drain_broker(args.broker_id, validate_only=args.dry_run)
    if args.json:
        print(message_json(reply))
        return 0
    verb = "would move" if args.dry_run else "moving"
    for move in reply.moves:
        print(f"{verb} {move.topic}-{move.partition}: "
              f"{_ids(move.from_replicas)} -> {_ids(move.to_replicas)}")
    if not reply.moves:
        print(f"broker {args.broker_id} holds no replicas")
    return 0


def _reassignment_line(topic: str, info: PartitionInfo) -> str:
    moving = (f"moving to {_ids(info.target_replicas)}" if info.target_replicas
              else "no reassignment under way")
    leader = info.leader if info.leader >= 0 else "none"
    return (f"{topic}-{info.partition}: replicas {_ids(info.replicas)}, in sync "
            f"{_ids(info.in_sync_replicas)}, leader {leader}; {moving}")


async def _settled(admin: Admin, args: argparse.Namespace,
                   replicas: list[int] | None) -> PartitionInfo:
    """The partition's state once its reassignment is done (to `replicas` when given)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.wait_timeout_s
    while True:
        desc = await admin.describe_topic(args.topic)
        if not 0 <= args.partition < len(desc.partitions):
            raise CliError(f"topic {args.topic} has no partition {args.partition} (it has "
                           f"{len(desc.partitions)})", "UNKNOWN_TOPIC_OR_PARTITION")
        info: PartitionInfo = desc.partitions[args.partition].info
        done = not info.target_replicas and info.leader >= 0
        if done and (replicas is None or list(info.replicas) == replicas):
            return info
        if not args.wait or loop.time() > deadline:
            if args.wait:
                raise CliError(f"{_reassignment_line(args.topic, info)} after "
                               f"{args.wait_timeout_s:g}s", "REASSIGNMENT_IN_PROGRESS")
            return info
        await asyncio.sleep(0.2)  # the move is one membership change at a time: poll


async def _reassign(args: argparse.Namespace) -> int:
    if args.status:
        async with Admin(args.bootstrap, **tls_options(args)) as admin:
            print(_reassignment_line(args.topic, await _settled(admin, args, None)))
        return 0
    try:
        replicas = [int(x) for x in args.replicas.split(",") if x.strip()]
    except ValueError:
        raise CliError(f"--replicas expects broker ids like 0,1,2, got {args.replicas!r}",
                       "INVALID_REQUEST") from None
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        await admin.reassign_partition(args.topic, args.partition, replicas,
                                       validate_only=args.dry_run)
        done = "is valid (not applied)" if args.dry_run else "started"
        print(f"reassignment of {args.topic}-{args.partition} to {_ids(replicas)} {done}",
              flush=True)
        if args.wait and not args.dry_run:
            print(_reassignment_line(args.topic, await _settled(admin, args, replicas)))
    return 0


def _ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in ids)
