"""`odradek topic delete-records`: Kafka's DeleteRecords, as kafka-delete-records.sh (whose
--offset-json-file format it reads) or for one partition from flags."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from odradek.cli.common import CliError, add_json_flag, tls_options
from odradek.client.admin import Admin
from odradek.client.errors import OdradekError

Wanted = tuple[str, int, int]  # topic, partition, before offset


def add_delete_records_parser(tsub: argparse._SubParsersAction[argparse.ArgumentParser],
                              parent: argparse.ArgumentParser) -> None:
    p = tsub.add_parser(
        "delete-records", parents=[parent],
        help="delete a partition's records before an offset (Kafka's DeleteRecords)",
        description="Moves the log start offset of partitions up: records below it can no "
                    "longer be read, and the segments wholly below it are deleted on every "
                    "replica. Prints each partition's new low watermark.")
    p.add_argument("topic", nargs="?", help="the topic (with --partition and --before)")
    p.add_argument("--partition", type=int, help="the partition")
    p.add_argument("--before", type=int, metavar="OFFSET",
                   help="delete the records below OFFSET; -1: every committed record")
    p.add_argument("--offset-json-file", type=Path, metavar="FILE",
                   help='kafka-delete-records.sh\'s file: {"partitions": [{"topic": "t", '
                        '"partition": 0, "offset": 10}], "version": 1}')
    add_json_flag(p)
    p.set_defaults(func=_delete_records)


def _wanted(args: argparse.Namespace) -> list[Wanted]:
    flags = (args.topic, args.partition, args.before)
    if args.offset_json_file is not None:
        if any(f is not None for f in flags):
            raise CliError("give either --offset-json-file or TOPIC --partition --before, "
                           "not both")
        return parse_offsets_file(args.offset_json_file)
    if any(f is None for f in flags):
        raise CliError("give TOPIC --partition P --before OFFSET, or --offset-json-file FILE")
    if args.partition < 0 or args.before < -1:
        raise CliError("--partition must be 0 or more and --before 0 or more (or -1)")
    return [(args.topic, args.partition, args.before)]


def parse_offsets_file(path: Path) -> list[Wanted]:
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CliError(f"{path} is not JSON: {exc}") from None
    entries = doc.get("partitions") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise CliError(f'{path} must hold {{"partitions": [{{"topic": ..., "partition": ..., '
                       f'"offset": ...}}, ...]}} with at least one partition')
    out: list[Wanted] = []
    for i, e in enumerate(entries):
        ok = (isinstance(e, dict) and isinstance(e.get("topic"), str)
              and _is_int(e.get("partition")) and _is_int(e.get("offset"))
              and e["partition"] >= 0 and e["offset"] >= -1)
        if not ok:
            raise CliError(f"{path}: partitions[{i}] needs a topic (string), a partition "
                           f"(0 or more) and an offset (0 or more, or -1): got {e!r}")
        out.append((e["topic"], e["partition"], e["offset"]))
    if len({(t, p) for t, p, _ in out}) != len(out):
        raise CliError(f"{path} names a partition more than once")
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


async def _delete_records(args: argparse.Namespace) -> int:
    wanted = _wanted(args)
    results: list[dict[str, Any]] = []
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        for topic, partition, before in wanted:
            row: dict[str, Any] = {"topic": topic, "partition": partition}
            try:
                row["low_watermark"] = await admin.delete_records(topic, partition, before)
            except OdradekError as exc:
                row["error"] = str(exc)
            results.append(row)
    if args.json:
        sys.stdout.write(json.dumps(results) + "\n")
    for r in results:
        name = f"{r['topic']}-{r['partition']}"
        if "error" in r:
            print(f"error: {name}: {r['error']}", file=sys.stderr)
        elif not args.json:
            sys.stdout.write(f"{name}\tlow watermark: {r['low_watermark']}\n")
    return 1 if any("error" in r for r in results) else 0
