"""`odradek user create|alter|delete|list`, `odradek acl add|remove|list` and
`odradek producer list` (named producers, an ACL resource)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from odradek.cli.common import (
    CliError,
    add_json_flag,
    bootstrap_parent,
    message_json,
    tls_options,
)
from odradek.client import Admin
from odradek.client.acls import (
    OPERATIONS,
    PATTERN_TYPES,
    AclFilter,
    acl,
    acl_filter,
    describe,
)
from odradek.client.auth import read_password_file
from odradek.security import scram

ENV_NEW_PASSWORD = "ODRADEK_NEW_USER_PASSWORD"


def add_security_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parent = bootstrap_parent()
    user = sub.add_parser("user", help="SCRAM-SHA-512 users")
    usub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    for action, text in (("create", "create a user"), ("alter", "set a user's password")):
        p = usub.add_parser(action, parents=[parent], help=text)
        p.add_argument("name")
        p.add_argument("--new-password-file", metavar="FILE",
                       help=f"the user's password is the file's first line (else env "
                            f"{ENV_NEW_PASSWORD}, else a prompt)")
        p.add_argument("--iterations", type=int, default=scram.DEFAULT_ITERATIONS,
                       help="PBKDF2 iterations (at least 4096, default %(default)s)")
        p.set_defaults(func=_create_user if action == "create" else _alter_user)
    p = usub.add_parser("delete", parents=[parent], help="delete a user")
    p.add_argument("name")
    p.set_defaults(func=_delete_user)
    p = usub.add_parser("list", parents=[parent], help="list users (never their keys)")
    add_json_flag(p)
    p.set_defaults(func=_list_users)

    producer = sub.add_parser("producer", help="named producers (Kafka's transactional ids)")
    psub = producer.add_subparsers(dest="producer_command", metavar="ACTION", required=True)
    p = psub.add_parser("list", parents=[parent],
                        help="the named producers you may describe, with id, epoch, last use")
    p.add_argument("--prefix", default="", help="only names starting with this")
    add_json_flag(p)
    p.set_defaults(func=_list_producers)

    acls = sub.add_parser("acl", help="access control lists")
    asub = acls.add_subparsers(dest="acl_command", metavar="ACTION", required=True)
    for action, text in (("add", "add bindings"), ("remove", "remove matching bindings"),
                         ("list", "list bindings")):
        p = asub.add_parser(action, parents=[parent], help=text)
        p.add_argument("--allow-principal", action="append", default=[], metavar="User:NAME")
        p.add_argument("--deny-principal", action="append", default=[], metavar="User:NAME")
        p.add_argument("--operation", action="append", default=[], choices=OPERATIONS,
                       help="repeatable")
        p.add_argument("--topic", help="a topic (or '*')")
        p.add_argument("--group", help="a consumer group (or '*')")
        p.add_argument("--cluster", action="store_true", help="the cluster")
        p.add_argument("--producer-name", help="a named producer (Kafka's "
                       "--transactional-id; or '*')")
        p.add_argument("--resource-pattern-type", choices=PATTERN_TYPES,
                       default="literal" if action == "add" else None)
        p.add_argument("--host", default="*" if action == "add" else None,
                       help="client address the binding is for (default: any)")
        if action == "list":
            add_json_flag(p)
        p.set_defaults(func={"add": _acl_add, "remove": _acl_remove, "list": _acl_list}[action])


def _new_password(args: argparse.Namespace) -> str:
    if args.new_password_file:
        try:
            password = read_password_file(args.new_password_file)
        except OSError as exc:
            raise CliError(f"cannot read --new-password-file: {exc}") from None
    elif os.environ.get(ENV_NEW_PASSWORD):
        password = os.environ[ENV_NEW_PASSWORD]
    elif sys.stdin.isatty():
        try:
            password = getpass.getpass(f"password for {args.name}: ")
            if getpass.getpass("again: ") != password:
                raise CliError("the passwords differ")
        except EOFError:
            print(file=sys.stderr)  # the prompt's line was left open
            raise CliError("no password given (end of input at the prompt)") from None
    else:
        raise CliError(f"no password: give --new-password-file or set {ENV_NEW_PASSWORD}")
    if not password:
        raise CliError("the password is empty")
    return password


def _create_user(args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    # The prompt comes before the event loop: under asyncio.run the first Ctrl-C only
    # cancels the main task, which a blocking getpass never notices.
    return _create_user_with(args, _new_password(args))


async def _create_user_with(args: argparse.Namespace, password: str) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        user = await admin.create_user(args.name, password, args.iterations)
    print(f"Created user {user.name} ({user.mechanism}, {user.iterations} iterations)")
    return 0


def _alter_user(args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    return _alter_user_with(args, _new_password(args))  # the prompt first, as above


async def _alter_user_with(args: argparse.Namespace, password: str) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        user = await admin.alter_user(args.name, password, args.iterations)
    print(f"Changed the password of user {user.name}")
    return 0


async def _delete_user(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        await admin.delete_user(args.name)
    print(f"Deleted user {args.name}")
    return 0


async def _list_users(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        users = await admin.list_users()
    if args.json:
        print(message_json(users))
        return 0
    print("NAME\tMECHANISM\tITERATIONS")
    for u in users:
        print(f"{u.name}\t{u.mechanism}\t{u.iterations}")
    return 0


async def _list_producers(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        names = await admin.list_producer_names(args.prefix)
    if args.json:
        print(message_json(names))
        return 0
    print("NAME\tPRODUCER_ID\tEPOCH\tLAST_USED")
    for n in names:
        used = (datetime.fromtimestamp(n.last_used_ms / 1000, UTC).isoformat(timespec="seconds")
                if n.last_used_ms else "-")
        print(f"{n.name}\t{n.producer_id}\t{n.producer_epoch}\t{used}")
    return 0


def _resource(args: argparse.Namespace, required: bool) -> tuple[str | None, str | None]:
    given = [(t, n) for t, n in (("topic", args.topic), ("group", args.group),
                                 ("cluster", "odradek-cluster" if args.cluster else None),
                                 ("producer_name", args.producer_name)) if n]
    if len(given) > 1:
        raise CliError("give one of --topic, --group, --cluster")
    if not given:
        if required:
            raise CliError("give one of --topic, --group, --cluster")
        return None, None
    return given[0]


def _principals(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    return ([(p, "allow") for p in args.allow_principal]
            + [(p, "deny") for p in args.deny_principal])


async def _acl_add(args: argparse.Namespace) -> int:
    rtype, name = _resource(args, required=True)
    assert rtype is not None and name is not None
    principals = _principals(args)
    if not principals or not args.operation:
        raise CliError("give --allow-principal or --deny-principal, and --operation")
    try:
        bindings = [acl(p, rtype, name, op, perm or "allow", args.resource_pattern_type,
                        args.host) for p, perm in principals for op in args.operation]
    except ValueError as exc:
        raise CliError(str(exc)) from None
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        await admin.create_acls(bindings)
    for b in bindings:
        print("Added " + _line(describe(b)))
    return 0


def _filters(args: argparse.Namespace) -> list[AclFilter]:
    rtype, name = _resource(args, required=False)
    principals: list[tuple[str | None, str | None]] = [*_principals(args)] or [(None, None)]
    ops = args.operation or [None]
    return [acl_filter(p, rtype, name, op, perm, args.resource_pattern_type, args.host)
            for p, perm in principals for op in ops]


async def _acl_remove(args: argparse.Namespace) -> int:
    filters = _filters(args)
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        deleted = await admin.delete_acls(filters)
    for b in deleted:
        print("Removed " + _line(describe(b)))
    if not deleted:
        print("No binding matched")
    return 0


async def _acl_list(args: argparse.Namespace) -> int:
    seen: dict[str, dict[str, str]] = {}
    async with Admin(args.bootstrap, **tls_options(args)) as admin:
        for f in _filters(args):
            for b in await admin.list_acls(f):
                d = describe(b)
                seen[_line(d)] = d
    if args.json:
        print(json.dumps(list(seen.values()), indent=2))
        return 0
    print("PRINCIPAL\tPERMISSION\tOPERATION\tRESOURCE\tPATTERN\tHOST")
    for line in seen:
        print(line)
    return 0


def _line(d: dict[str, str]) -> str:
    return (f"{d['principal']}\t{d['permission']}\t{d['operation']}\t"
            f"{d['resource_type']}:{d['resource_name']}\t{d['pattern_type']}\t{d['host']}")
