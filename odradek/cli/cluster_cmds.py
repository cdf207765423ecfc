"""`odradek cluster describe|drain` and `odradek partition reassign`: moving replicas."""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from odradek.cli.common import CliError, bootstrap_parent, tls_options
from odradek.client import Admin


def add_cluster_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parent = bootstrap_parent()
    cluster = sub.add_parser("cluster", help="describe the cluster, drain a broker")
    csub = cluster.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    p = csub.add_parser("describe", parents=[parent], help="brokers and the controller")
    p.set_defaults(func=_describe)
    p = csub.add_parser("drain", parents=[parent],
                        help="move every replica off a broker (before removing it)")
    p.add_argument("broker_id", type=int)
    p.add_argument("--dry-run", action="store_true", help="print the moves, change nothing")
    p.set_defaults(func=_drain)

    partition = sub.add_parser("partition", help="move a partition's replicas")
    psub = partition.add_subparsers(dest="partition_command", metavar="ACTION", required=True)
    p = psub.add_parser("reassign", parents=[parent],
                        help="move a partition to the given brokers, one change at a time")
    p.add_argument("topic")
    p.add_argument("partition", type=int)
    p.add_argument("--replicas", required=True, metavar="ID,ID,...",
                   help="target brokers; the first becomes the preferred leader")
    p.add_argument("--dry-run", action="store_true", help="check, change nothing")
    p.set_defaults(func=_reassign)


async def _describe(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        meta = await admin.metadata()
    print(f"Cluster: {meta.cluster_id}\tController: {meta.controller_id}")
    for b in meta.brokers:
        rack = f"\tRack: {b.rack}" if b.rack else ""
        print(f"\tBroker: {b.id}\t{b.host}:{b.port}{rack}")
    return 0


async def _drain(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        reply = await admin.drain_broker(args.broker_id, validate_only=args.dry_run)
    verb = "would move" if args.dry_run else "moving"
    for move in reply.moves:
        print(f"{verb} {move.topic}-{move.partition}: "
              f"{_ids(move.from_replicas)} -> {_ids(move.to_replicas)}")
    if not reply.moves:
        print(f"broker {args.broker_id} holds no replicas")
    return 0


async def _reassign(args: argparse.Namespace) -> int:
    try:
        replicas = [int(x) for x in args.replicas.split(",") if x.strip()]
    except ValueError:
        raise CliError(f"--replicas expects broker ids like 0,1,2, got {args.replicas!r}",
                       "INVALID_REQUEST") from None
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        await admin.reassign_partition(args.topic, args.partition, replicas,
                                       validate_only=args.dry_run)
    done = "is valid (not applied)" if args.dry_run else "started"
    print(f"reassignment of {args.topic}-{args.partition} to {_ids(replicas)} {done}")
    return 0


def _ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in ids)
