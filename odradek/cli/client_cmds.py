"""`odradek topic`, `odradek produce` and `odradek consume`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import IO, Any

from odradek.cli.common import (
    CliError,
    add_config_flag,
    add_json_flag,
    bootstrap_parent,
    key_value,
    message_json,
    parse_timestamp,
    tls_options,
    unescape,
)
from odradek.cli.delete_records import add_delete_records_parser
from odradek.cli.record_format import (
    FORMAT_HELP,
    Formatter,
    compile_format,
    json_line,
    text_formatter,
)
from odradek.cli.record_input import InputRecord, parse_json_record, parse_text_record
from odradek.client.admin import Admin
from odradek.client.consumer import Consumer, TopicPartition
from odradek.client.delivery import RecordFuture
from odradek.client.errors import OdradekError
from odradek.client.producer import Producer
from odradek.client.types import TopicDescription
from odradek.records import Compression

# -- topic -----------------------------------------------------------------------------------


def add_topic_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parent = bootstrap_parent()
    topic = sub.add_parser("topic", help="create, list, describe, alter and delete topics "
                           "and their records")
    tsub = topic.add_subparsers(dest="topic_command", metavar="ACTION", required=True)

    p = tsub.add_parser("create", parents=[parent], help="create a topic")
    p.add_argument("name")
    p.add_argument("--partitions", "-p", type=int, default=1, help="default %(default)s")
    p.add_argument("--replication-factor", "-r", type=int, default=0,
                   help="replicas per partition (0: the broker's default)")
    add_config_flag(p, "topic config, e.g. cleanup.policy=compact")
    p.add_argument("--validate-only", action="store_true", help="check, change nothing")
    p.add_argument("--if-not-exists", action="store_true",
                   help="succeed when the topic exists already")
    p.set_defaults(func=_topic_create)

    p = tsub.add_parser("list", parents=[parent], help="list topics")
    p.add_argument("--internal", action="store_true", help="include internal topics")
    add_json_flag(p)
    p.set_defaults(func=_topic_list)

    p = tsub.add_parser("describe", parents=[parent],
                        help="describe topics: the ones named, or all of them")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="topics to describe (default: every topic)")
    p.add_argument("--internal", action="store_true",
                   help="with no NAME: include internal topics")
    add_json_flag(p)
    p.set_defaults(func=_topic_describe)

    p = tsub.add_parser("delete", parents=[parent], help="delete a topic")
    p.add_argument("name")
    p.set_defaults(func=_topic_delete)

    p = tsub.add_parser("alter", parents=[parent],
                        help="change a topic's configs or partition count")
    p.add_argument("name")
    add_config_flag(p, "config to set")
    p.add_argument("--delete-config", action="append", default=[], metavar="KEY",
                   help="config to return to its default (repeatable)")
    p.add_argument("--partitions", type=int, help="new total partition count")
    p.add_argument("--validate-only", action="store_true", help="check, change nothing")
    add_json_flag(p)
    p.set_defaults(func=_topic_alter)

    add_delete_records_parser(tsub, parent)


def _print(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _print_description(d: TopicDescription) -> None:
    _print(f"Topic: {d.name}\tTopicId: {d.topic_id}\tPartitions: {len(d.partitions)}\t"
           f"ReplicationFactor: {d.replication_factor}"
           + ("\tInternal: true" if d.internal else ""))
    set_configs = [f"{c.name}={c.value}" for c in d.configs if not c.is_default]
    _print("Configs: " + (",".join(set_configs) if set_configs else "(defaults)"))
    for ps in d.partitions:
        info = ps.info
        leader = str(info.leader) if info.leader >= 0 else "none"
        _print(f"\tPartition: {info.partition}\tLeader: {leader}\t"
               f"Replicas: {','.join(map(str, info.replicas))}\t"
               f"Isr: {','.join(map(str, info.in_sync_replicas))}\t"
               f"LogStart: {ps.log_start_offset}\tHighWatermark: {ps.high_watermark}\t"
               f"Size: {ps.size_bytes}")


def _to_json(message: Any) -> str:
    return message_json(message)


async def _topic_create(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        try:
            desc = await admin.create_topic(
                args.name, args.partitions, args.replication_factor, args.config,
                args.validate_only)
        except OdradekError as exc:
            if args.if_not_exists and exc.reason == "TOPIC_ALREADY_EXISTS":
                return 0
            raise
    if args.validate_only:
        _print(f"topic {args.name} is valid (not created)")
    else:
        count = len(desc.partitions) or args.partitions
        _print(f"created topic {desc.name or args.name} with {count} partition(s)")
    return 0


async def _topic_list(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        topics = await admin.list_topics(args.internal)
    if args.json:
        _print(json.dumps([{"name": t.name, "partitions": t.partitions,
                            "replication_factor": t.replication_factor,
                            "internal": t.internal} for t in topics]))
        return 0
    if not topics:
        return 0
    width = max(4, *(len(t.name) for t in topics))
    _print(f"{'NAME':<{width}}  PARTITIONS  REPLICATION")
    for t in topics:
        flag = "  (internal)" if t.internal else ""
        _print(f"{t.name:<{width}}  {t.partitions:>10}  {t.replication_factor:>11}{flag}")
    return 0


async def _topic_describe(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        names = args.names or [t.name for t in await admin.list_topics(args.internal)]
        descs = [await admin.describe_topic(name) for name in names]
    if args.json:
        # One name: its object, as before; otherwise an array, even of one or none.
        _print(_to_json(descs[0] if len(args.names) == 1 else descs))
        return 0
    for i, desc in enumerate(descs):
        if i:
            _print()
        _print_description(desc)
    return 0


async def _topic_delete(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        await admin.delete_topic(args.name)
    _print(f"deleted topic {args.name}")
    return 0


async def _topic_alter(args: argparse.Namespace) -> int:
    if not args.config and not args.delete_config and args.partitions is None:
        raise CliError("nothing to alter: give --config, --delete-config or --partitions")
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        desc = None
        if args.config or args.delete_config:
            desc = await admin.alter_configs(
                args.name, args.config, args.delete_config, args.validate_only)
        if args.partitions is not None:
            desc = await admin.create_partitions(args.name, args.partitions, args.validate_only)
    assert desc is not None
    if args.validate_only:
        _print(f"changes to topic {args.name} are valid (not applied)")
    elif args.json:
        _print(_to_json(desc))
    else:
        _print_description(desc)
    return 0


# -- produce ---------------------------------------------------------------------------------


def add_produce_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "produce", parents=[bootstrap_parent()],
        help="send lines from stdin (or --file) as records",
        description="Sends each line of standard input (or --file) as one record: its "
                    "text, or with --format json an object as `consume --format json` "
                    "prints it.")
    p.add_argument("topic")
    keyed = p.add_mutually_exclusive_group()
    keyed.add_argument("--key-separator", metavar="SEP",
                       help="split each line into key SEP value (e.g. ':' or '\\t')")
    keyed.add_argument("--key", "-k", metavar="KEY",
                       help="the key of every record (a JSON line's own key wins)")
    p.add_argument("--partition", "-p", type=int,
                   help="send every record to this partition (a JSON line's own wins; "
                        "default: by the key's hash)")
    p.add_argument("--file", "-F", metavar="PATH",
                   help="read the records from this file instead of standard input")
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="text: a line is a value (see --key-separator); json: a line is "
                        '{"key", "value", "headers", "partition", "timestamp"}, every field '
                        "optional, key and value strings (base64 with key_encoding or "
                        'value_encoding "base64") or any JSON (default %(default)s)')
    p.add_argument("--compression", default="none",
                   choices=[c.name.lower() for c in Compression])
    p.add_argument("--acks", default="quorum", choices=["quorum", "leader", "all", "1", "-1"],
                   help="quorum (= all, -1): a majority of replicas has it; leader (= 1): "
                        "the leader has it (default %(default)s)")
    p.add_argument("--header", "-H", action="append", type=key_value, default=[],
                   metavar="KEY=VALUE", help="header added to every record (repeatable)")
    p.add_argument("--linger-ms", type=float, default=5,
                   help="wait up to this long to fill a batch (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=16384,
                   help="bytes per batch and partition (default %(default)s)")
    p.add_argument("--no-idempotence", action="store_true",
                   help="send batches without producer id and sequence numbers (with acks "
                   "quorum, retries are then deduplicated by nothing)")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="print partition and offset of each record to stderr")
    p.set_defaults(func=_produce)


async def _stdin_lines(stream: IO[bytes]) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    read = getattr(stream, "read1", None) or stream.read
    carry = b""
    while True:
        chunk: bytes = await loop.run_in_executor(None, read, 1 << 16)
        if not chunk:
            break
        lines = (carry + chunk).split(b"\n")
        carry = lines.pop()
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
    if carry:
        yield carry


async def _produce(args: argparse.Namespace) -> int:
    if args.format == "json" and args.key_separator:
        raise CliError("--key-separator splits text lines; with --format json a line "
                       "carries its own key")
    if args.file is None:
        stdin: Any = getattr(sys.stdin, "buffer", sys.stdin)
        return await _send_lines(args, stdin)
    try:
        stream = open(args.file, "rb")  # noqa: SIM115 - closed below, after the sends
    except OSError as exc:
        raise CliError(f"cannot read --file: {exc}") from None
    try:
        return await _send_lines(args, stream)
    finally:
        stream.close()


def _input_record(args: argparse.Namespace, line: bytes, line_no: int,
                  key: bytes | None, sep: bytes | None) -> InputRecord:
    if args.format == "json":
        record = parse_json_record(line, line_no)
        if record.key is None and key is not None:
            record = replace(record, key=key)
        return record
    return parse_text_record(line, line_no, key, sep)


async def _send_lines(args: argparse.Namespace, stream: IO[bytes]) -> int:
    sep = unescape(args.key_separator).encode() if args.key_separator else None
    key = args.key.encode() if args.key is not None else None
    headers = tuple((k, v.encode()) for k, v in args.header)
    failures: list[BaseException] = []
    line_no = 0

    def done(fut: RecordFuture) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            failures.append(exc)
        elif args.verbose:
            m = fut.result()
            print(f"{m.topic}-{m.partition}@{m.offset}", file=sys.stderr)

    async with Producer(args.bootstrap, **tls_options(args), compression=args.compression,
                        acks=args.acks,
                        linger_ms=args.linger_ms, batch_size=args.batch_size,
                        enable_idempotence=False if args.no_idempotence else None) as producer:
        async for line in _stdin_lines(stream):
            line_no += 1
            if args.format == "json" and not line.strip():
                continue  # blank lines between JSON objects
            record = _input_record(args, line, line_no, key, sep)
            partition = args.partition if record.partition is None else record.partition
            fut = await producer.send(args.topic, record.value, key=record.key,
                                      partition=partition, headers=headers + record.headers,
                                      timestamp_ms=record.timestamp_ms)
            fut.add_done_callback(done)
            if failures:
                break
        await producer.flush()
    if failures:
        exc = failures[0]
        if isinstance(exc, OdradekError):
            raise exc
        raise CliError(str(exc))
    return 0


# -- consume ---------------------------------------------------------------------------------


def add_consume_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "consume", parents=[bootstrap_parent()], help="print records of a topic",
        description="Prints a topic's records, one per line. Starts at the end unless told.")
    p.add_argument("topic")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true", help="start at the earliest offset")
    start.add_argument("--from-end", action="store_true", help="only new records (the default)")
    start.add_argument("--offset", "-o", type=parse_start_offset, metavar="WHERE",
                       help="beginning, end, N (offset N) or -N (N offsets before the end "
                            "of each partition, as kcat -o -N)")
    start.add_argument("--from-timestamp", type=parse_timestamp, metavar="MS|ISO8601",
                       help="start at the first record at or after this time")
    p.add_argument("--partition", "-p", type=int, action="append",
                   help="partition to read (repeatable; default: all)")
    p.add_argument("--group", "-g", metavar="GROUP",
                   help="consume as a member of this group: partitions are assigned by the "
                        "group, reading starts at its committed offsets (else at the end, or "
                        "the beginning with --from-beginning) and progress is committed")
    p.add_argument("--group-instance-id", default="", metavar="ID",
                   help="static membership: a restart within the session timeout keeps the "
                        "partitions without a rebalance")
    p.add_argument("--session-timeout-ms", type=int, default=10_000, metavar="MS",
                   help="with --group: a member silent this long is removed "
                        "(default %(default)s)")
    p.add_argument("--max-messages", "-n", "--count", type=int,
                   help="exit after this many records")
    p.add_argument("--exit", "-e", action="store_true",
                   help="exit once every partition is read to the end it had at the start "
                        "(as kcat -e; not with --group)")
    p.add_argument("--timeout-ms", type=int,
                   help="exit after this long without a record (default: never)")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--format", choices=["text", "json"], default="text",
                       help="text: the value (see --print-*); json: one object per line "
                            "with numbers as numbers and headers (default %(default)s)")
    shape.add_argument("--format-string", "-f", metavar="FMT", help=FORMAT_HELP)
    p.add_argument("--print-key", action="store_true", help="text format: print key SEP value")
    p.add_argument("--print-timestamp", action="store_true",
                   help="text format: start the line with CreateTime:MS and a tab")
    p.add_argument("--print-headers", action="store_true",
                   help="text format: the headers (k:v,k:v or NO_HEADERS) and a tab before "
                        "the key and value")
    p.add_argument("--key-separator", default="\\t", metavar="SEP",
                   help="text format: separator after the key (default a tab)")
    p.set_defaults(func=_consume)


async def _consume(args: argparse.Namespace) -> int:
    out: Any = getattr(sys.stdout, "buffer", None) or _TextBytes(sys.stdout)
    render = record_renderer(args)
    if args.group:
        if args.partition or args.offset is not None or args.from_timestamp is not None \
                or args.exit:
            raise CliError("--group reads the partitions the group assigns from its committed "
                           "offsets: --partition, --offset, --from-timestamp and --exit do "
                           "not apply")
        group = {"group_id": args.group, "group_instance_id": args.group_instance_id,
                 "session_timeout_ms": args.session_timeout_ms, "client_id": "odradek-cli"}
    else:
        group = {}
    reset = "earliest" if args.group and args.from_beginning else "latest"
    async with Consumer(args.bootstrap, **tls_options(args), **group,
                        auto_offset_reset=reset) as consumer:
        if args.group:
            # A group waits for its topics to appear; a mistyped name would wait forever.
            await consumer.cluster.topic(args.topic)
            consumer.subscribe([args.topic])
        elif args.partition:
            tps = [TopicPartition(args.topic, p) for p in args.partition]
            count = (await consumer.cluster.topic(args.topic)).num_partitions
            for tp in tps:
                if not 0 <= tp.partition < count:
                    raise CliError(f"topic {args.topic} has no partition {tp.partition} "
                                   f"(it has {count})", "UNKNOWN_TOPIC_OR_PARTITION")
        else:
            tps = await consumer.partitions_for(args.topic)
        ends = None
        if not args.group:
            await _position(consumer, tps, args)
            if args.exit:
                ends = await consumer.end_offsets(tps)
        await _print_records(consumer, args, out, render, ends)
    return 0


def parse_start_offset(text: str) -> str | int:
    """--offset: "beginning", "end", N or -N."""
    if text in ("beginning", "end"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected beginning, end, an offset N or -N (N before the end), got {text!r}"
        ) from None


async def _position(consumer: Consumer, tps: list[TopicPartition],
                args: argparse.Namespace) -> None:
    consumer.assign(tps)
    if args.from_beginning or args.offset == "beginning":
        await consumer.seek_to_beginning()
    elif args.offset == "end":
        await consumer.seek_to_end()
    elif isinstance(args.offset, int) and args.offset < 0:
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:  # offsets have gaps (Raft's control batches): about N records
            consumer.seek(tp, max(starts[tp], ends[tp] + args.offset))
    elif args.offset is not None:
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(int(args.offset), starts[tp]))
            if args.offset < starts[tp]:  # deleted (retention, delete-records): say so
                print(f"note: {tp.topic}-{tp.partition} starts at offset {starts[tp]} (the "
                      f"records before it were deleted); reading from there",
                      file=sys.stderr, flush=True)
            if args.offset > ends[tp]:  # else the wait for it would look like a hang
                print(f"note: {tp.topic}-{tp.partition} ends at offset {ends[tp]}; waiting "
                      f"for offset {args.offset}", file=sys.stderr, flush=True)
    elif args.from_timestamp is not None:
        for tp in tps:
            await consumer.seek_to_timestamp(tp, args.from_timestamp)
    else:
        await consumer.seek_to_end()


async def _at_ends(consumer: Consumer, ends: dict[TopicPartition, int] | None) -> bool:
    if ends is None:
        return False
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


def record_renderer(args: argparse.Namespace) -> Formatter:
    """The bytes printed for each record (its newline included)."""
    if args.format_string is not None:
        try:
            return compile_format(unescape(args.format_string))
        except ValueError as exc:
            raise CliError(f"--format-string: {exc}") from None
    line: Formatter
    if args.format == "json":
        line = json_line
    else:
        line = text_formatter(args.print_key, unescape(args.key_separator).encode(),
                              args.print_timestamp, args.print_headers)
    return lambda r: line(r) + b"\n"


async def _print_records(consumer: Consumer, args: argparse.Namespace, out: Any,
                         render: Formatter,
                         ends: dict[TopicPartition, int] | None = None) -> None:
    seen = 0
    loop = asyncio.get_running_loop()
    idle_since = loop.time()
    while args.max_messages is None or seen < args.max_messages:
        if await _at_ends(consumer, ends):
            break
        wait = 1000.0
        if args.timeout_ms is not None:
            left = args.timeout_ms - (loop.time() - idle_since) * 1000
            if left <= 0:
                break
            wait = min(wait, left)
        limit = None if args.max_messages is None else args.max_messages - seen
        records = await consumer.poll(wait, max_records=limit)
        if not records:
            continue
        idle_since = loop.time()
        seen += len(records)
        out.write(b"".join(render(r) for r in records))
        out.flush()


class _TextBytes:
    """Writes bytes to a text stream (when stdout has no binary buffer, as under tests)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, data: bytes) -> int:
        return self._stream.write(data.decode("utf-8", errors="replace"))

    def flush(self) -> None:
        self._stream.flush()
