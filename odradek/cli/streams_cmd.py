"""`odradek streams describe APP`: the tasks of a stream application, who runs each, who
keeps standby copies, and their lag, as the instances publish them to `<APP>-instances`.
`odradek streams query APP STORE [KEY]`: an interactive query of a store, asked of the
instances over gRPC (one key, routed by the instance asked, or a range over all)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import grpc

from odradek.cli.common import CliError, add_json_flag, bootstrap_parent, tls_options
from odradek.client import Consumer, TopicPartition
from odradek.client.errors import OdradekError
from odradek.security.tls import ClientTLS, TLSConfigError
from odradek.streams.query import QueryClient
from odradek.streams.registry import InstanceInfo, parse_task, registry_topic


def add_streams_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    streams = sub.add_parser("streams", help="inspect odradek.streams applications")
    ssub = streams.add_subparsers(dest="streams_command", metavar="SUBCOMMAND", required=True)
    p = ssub.add_parser(
        "describe", parents=[bootstrap_parent()],
        help="tasks of an application: owner, standbys, lag",
        description="Reads the application's registry topic (<APP>-instances), where each "
                    "running instance publishes its tasks every few seconds. LAG of a task "
                    "is its input records not yet processed (- while it restores); the lag "
                    "after a standby is the changelog records its copy is behind by.")
    p.add_argument("app", metavar="APP", help="the application id")
    add_json_flag(p)
    p.set_defaults(func=_describe)
    p = ssub.add_parser(
        "query", parents=[bootstrap_parent()],
        help="read a store of a running application (interactive query)",
        description="Asks a live instance that serves queries (App(query_address=...)) for "
                    "KEY in STORE; it answers from its task or from the instance running "
                    "the key's task. Without KEY: every key from --from (inclusive) to --to "
                    "(exclusive), from every instance, as KEY<TAB>VALUE lines. Keys are "
                    "given and printed as UTF-8 (a store with STR keys), values printed as "
                    "UTF-8 (JSON values print as JSON).")
    p.add_argument("app", metavar="APP")
    p.add_argument("store", metavar="STORE")
    p.add_argument("key", metavar="KEY", nargs="?")
    p.add_argument("--from", dest="lo", metavar="KEY", help="first key of a range")
    p.add_argument("--to", dest="hi", metavar="KEY", help="end of a range (not included)")
    p.add_argument("--query-tls-ca", metavar="PEM",
                   help="CA that signs the instances' query certificates (their "
                        "App(query_tls=...)): ask them over TLS")
    p.add_argument("--query-tls-cert", metavar="PEM",
                   help="client certificate for query servers that require one")
    p.add_argument("--query-tls-key", metavar="PEM", help="key of --query-tls-cert")
    p.set_defaults(func=_query)


async def read_registry(args: argparse.Namespace) -> dict[str, InstanceInfo]:
    topic = registry_topic(args.app)
    async with Consumer(args.bootstrap, auto_offset_reset="earliest",
                        **tls_options(args)) as reader:
        tp = TopicPartition(topic, 0)
        try:
            end = (await reader.end_offsets([tp]))[tp]
        except OdradekError as exc:
            raise CliError(f"no stream application {args.app!r} ({topic}: {exc})",
                           exc.reason) from exc
        reader.assign([tp])
        found: dict[str, InstanceInfo] = {}
        deadline = time.monotonic() + 30
        while await reader.position(tp) < end:
            if time.monotonic() > deadline:
                raise CliError(f"reading {topic} took over 30 s")
            for r in await reader.poll(200):
                if r.key is None:
                    continue
                if r.value is None:
                    found.pop(r.key.decode(), None)
                else:
                    found[r.key.decode()] = InstanceInfo.decode(r.key.decode(), r.value)
        return found


async def _describe(args: argparse.Namespace) -> int:
    instances = await read_registry(args)
    now = int(time.time() * 1000)
    live = {i: info for i, info in instances.items() if info.fresh(now)}
    tasks: dict[str, dict[str, object]] = {}
    for info in sorted(live.values(), key=lambda i: i.updated_ms):
        for name, lag in info.active.items():
            tasks.setdefault(name, {"standbys": {}})
            tasks[name].update(owner=info.instance_id, endpoint=info.endpoint, lag=lag)
    for info in live.values():
        for name, lag in info.standby.items():
            entry = tasks.setdefault(name, {"standbys": {}})
            entry["standbys"][info.instance_id] = lag  # type: ignore[index]
    ordered = sorted(tasks, key=parse_task)
    if args.json:
        print(json.dumps({
            "application": args.app,
            "instances": [{"instance": i.instance_id, "endpoint": i.endpoint,
                           "active": sorted(i.active, key=parse_task),
                           "standby": sorted(i.standby, key=parse_task),
                           "age_ms": now - i.updated_ms, "live": i.instance_id in live}
                          for i in sorted(instances.values(), key=lambda i: i.instance_id)],
            "tasks": [{"task": t, "owner": tasks[t].get("owner"),
                       "endpoint": tasks[t].get("endpoint"), "lag": tasks[t].get("lag"),
                       "standbys": tasks[t]["standbys"]} for t in ordered]}, indent=2))
        return 0
    print(f"application {args.app}: {len(live)} live instance(s)"
          + (f", {len(instances) - len(live)} stale" if len(instances) > len(live) else ""))
    for info in sorted(instances.values(), key=lambda i: i.instance_id):
        state = "live" if info.instance_id in live else "stale"
        print(f"  {info.instance_id}  {info.endpoint or '-'}  {len(info.active)} task(s), "
              f"{len(info.standby)} standby(s), seen {(now - info.updated_ms) / 1000:.1f}s "
              f"ago ({state})")
    rows = [["TASK", "OWNER", "ENDPOINT", "LAG", "STANDBYS (LAG)"]]
    for t in ordered:
        entry = tasks[t]
        task_lag = entry.get("lag")
        standbys = entry["standbys"]
        assert isinstance(standbys, dict)
        rows.append([t, str(entry.get("owner", "-")), str(entry.get("endpoint") or "-"),
                     "-" if task_lag is None or task_lag == -1 else str(task_lag),
                     ", ".join(f"{i} ({n})" for i, n in sorted(standbys.items())) or "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="backslashreplace")


def _query_tls(args: argparse.Namespace) -> ClientTLS | None:
    ca, cert, key = args.query_tls_ca, args.query_tls_cert, args.query_tls_key
    if not (ca or cert or key):
        return None
    try:
        return ClientTLS(ca=Path(ca) if ca else None, cert=Path(cert) if cert else None,
                         key=Path(key) if key else None)
    except TLSConfigError as exc:
        raise CliError(f"--query-tls-*: {exc}") from None


async def _query(args: argparse.Namespace) -> int:
    serving = [i for i in (await read_registry(args)).values() if i.fresh() and i.endpoint]
    if not serving:
        raise CliError(f"no live instance of {args.app!r} serves queries (start it with "
                       "App(query_address=...))")
    client = QueryClient(_query_tls(args))
    try:
        if args.key is not None:
            if args.lo is not None or args.hi is not None:
                raise CliError("give KEY or --from/--to, not both")
            value = await _ask(client, serving, args)
            if value is None:
                raise CliError(f"no key {args.key!r} in store {args.store!r}", "NOT_FOUND")
            print(_text(value))
            return 0
        lo = None if args.lo is None else args.lo.encode()
        hi = None if args.hi is None else args.hi.encode()
        pairs: dict[bytes, bytes] = {}
        for info in serving:
            try:
                pairs.update(await client.range(info.endpoint, args.app, args.store, lo, hi))
            except grpc.aio.AioRpcError as exc:
                raise CliError(f"instance {info.instance_id} at {info.endpoint}: "
                               f"{exc.code().name} {exc.details()}") from exc
        for k, v in sorted(pairs.items()):
            print(f"{_text(k)}\t{_text(v)}")
        return 0
    finally:
        await client.close()


async def _ask(client: QueryClient, serving: list[InstanceInfo],
               args: argparse.Namespace) -> bytes | None:
    """The first instance that answers (one that is stopping may not)."""
    errors = []
    for info in serving:
        try:
            return await client.get(info.endpoint, args.app, args.store, -1, args.key.encode())
        except grpc.aio.AioRpcError as exc:
            errors.append(f"{info.instance_id} at {info.endpoint}: {exc.code().name} "
                          f"{exc.details()}")
    raise CliError("no instance answered: " + "; ".join(errors))
