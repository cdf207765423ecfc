"""`odradek group list|describe|reset|delete`."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from odradek.cli.common import (
    CliError,
    add_json_flag,
    bootstrap_parent,
    message_json,
    parse_duration_ms,
    parse_timestamp,
    tls_options,
)
from odradek.client.admin import Admin
from odradek.client.types import to_dict


def add_group_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parent = bootstrap_parent()
    group = sub.add_parser("group", help="list, describe, reset and delete consumer groups")
    gsub = group.add_subparsers(dest="group_command", metavar="SUBCOMMAND", required=True)
    p = gsub.add_parser("list", parents=[parent], help="list consumer groups")
    add_json_flag(p)
    p.set_defaults(func=_list)
    p = gsub.add_parser("describe", parents=[parent],
                        help="members, assignment, committed offsets and lag of a group")
    p.add_argument("group")
    add_json_flag(p)
    p.set_defaults(func=_describe)
    p = gsub.add_parser("delete", parents=[parent],
                        help="delete a group and its offsets (it must have no members)")
    p.add_argument("group")
    p.set_defaults(func=_delete)
    p = gsub.add_parser(
        "reset", parents=[parent], help="move a group's committed offsets",
        description="Moves committed offsets of a group without members. Shows the plan "
                    "unless --execute is given.")
    p.add_argument("group")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--topic", "-t", action="append", default=[], metavar="TOPIC[:P,P]",
                       help="topic (optionally some partitions) to reset; repeatable")
    which.add_argument("--all-topics", action="store_true",
                       help="every partition the group has committed offsets for")
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true")
    to.add_argument("--to-latest", action="store_true")
    to.add_argument("--to-datetime", type=parse_timestamp, metavar="MS|ISO8601",
                    help="the first offset at or after this time")
    to.add_argument("--by-duration", type=parse_duration_ms, metavar="DURATION",
                    help="the first offset at or after this long ago: ISO 8601 (PT30M, "
                         "P1DT2H, as kafka-consumer-groups.sh) or 30s, 15m, 2h, 1d")
    to.add_argument("--to-offset", type=int, metavar="N")
    to.add_argument("--shift-by", type=int, metavar="N",
                    help="move by N (negative: back), within the log's bounds")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="only show the plan (default)")
    mode.add_argument("--execute", action="store_true", help="apply the plan")
    add_json_flag(p)
    p.set_defaults(func=_reset)
    p = gsub.add_parser(
        "delete-offsets", parents=[parent],
        help="forget a group's committed offsets of some topics; the group stays "
             "(kafka-consumer-groups.sh --delete-offsets; it must have no members)")
    p.add_argument("group")
    p.add_argument("--topic", "-t", action="append", required=True, metavar="TOPIC[:P,P]",
                   help="topic (optionally some partitions) whose offsets go; repeatable")
    add_json_flag(p)
    p.set_defaults(func=_delete_offsets)


def _print(text: str = "") -> None:
    print(text, flush=True)


def _table(rows: list[list[Any]], header: list[str]) -> None:
    cells = [header, *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for row in cells:
        _print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


async def _list(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        groups = await admin.list_groups()
    if args.json:
        _print(json.dumps([{"group": g.group_id, "state": g.state, "members": g.members,
                            "coordinator": g.coordinator_id} for g in groups]))
    elif groups:
        _table([[g.group_id, g.state, g.members, g.coordinator_id] for g in groups],
               ["GROUP", "STATE", "MEMBERS", "COORDINATOR"])
    return 0


async def _describe(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        d = await admin.describe_group(args.group)
    if args.json:
        _print(message_json(d))
        return 0
    _print(f"group {d.group_id}: {d.state}, generation {d.generation}, strategy "
           f"{d.strategy}, coordinator broker {d.coordinator_id}, {len(d.members)} member(s)")
    clients = {m.member_id: m for m in d.members}

    def unknown(value: int) -> str:
        return "-" if value < 0 else str(value)

    rows = []
    for p in d.partitions:
        m = clients.get(p.member_id)
        rows.append([p.topic, p.partition, unknown(p.committed_offset),
                     unknown(p.log_end_offset), unknown(p.lag), p.member_id or "-",
                     (m.instance_id or "-") if m else "-"])
    _print()
    _table(rows, ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                  "MEMBER", "INSTANCE"])
    if d.members:
        _print()
        _table([[m.member_id, m.instance_id or "-", m.client_id or "-",
                 "yes" if m.connected else "no", ",".join(m.topics),
                 sum(len(a.partitions) for a in m.assigned)] for m in d.members],
               ["MEMBER", "INSTANCE", "CLIENT", "CONNECTED", "TOPICS", "PARTITIONS"])
    return 0


async def _delete(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        await admin.delete_group(args.group)
    _print(f"deleted group {args.group}")
    return 0


def _topic_spec(text: str) -> tuple[str, list[int]]:
    topic, sep, parts = text.partition(":")
    if not topic:
        raise CliError(f"bad --topic {text!r}: expected TOPIC or TOPIC:P,P")
    try:
        return topic, [int(p) for p in parts.split(",")] if sep else []
    except ValueError:
        raise CliError(f"bad partitions in --topic {text!r}: expected TOPIC:0,1,2") from None


async def _reset(args: argparse.Namespace) -> int:
    if not args.topic and not args.all_topics:
        raise CliError("say which offsets to reset: --topic TOPIC[:P,P] or --all-topics")
    topics = dict(_topic_spec(t) for t in args.topic)
    options: dict[str, Any] = {
        "to_earliest": args.to_earliest, "to_latest": args.to_latest,
        "to_timestamp_ms": args.to_datetime if args.by_duration is None
        else int(time.time() * 1000) - args.by_duration, "to_offset": args.to_offset,
        "shift_by": args.shift_by}
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        changes = await admin.reset_group_offsets(
            args.group, topics, dry_run=not args.execute,
            **{k: v for k, v in options.items() if v not in (None, False)})
    if args.json:
        _print(json.dumps({"executed": bool(args.execute),
                           "changes": [to_dict(c) for c in changes]}, indent=2))
        return 0
    _table([[c.topic, c.partition, "-" if c.previous < 0 else c.previous, c.offset]
            for c in changes], ["TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"])
    if not args.execute:
        _print("(dry run: nothing changed; add --execute to apply)")
    return 0


async def _delete_offsets(args: argparse.Namespace) -> int:
    topics = dict(_topic_spec(t) for t in args.topic)
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        deleted = await admin.delete_group_offsets(args.group, topics)
    if args.json:
        _print(message_json(deleted))
    elif not deleted:
        _print(f"group {args.group} had no committed offsets for {', '.join(topics)}")
    else:
        _table([[o.topic, o.partition, o.offset] for o in deleted],
               ["TOPIC", "PARTITION", "DELETED-OFFSET"])
    return 0
