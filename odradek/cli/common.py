"""Helpers shared by the CLI's subcommands."""

from __future__ import annotations

import argparse
import json
import os
import re
from datetime import UTC, datetime
from typing import Any

from odradek.client.connection import DEFAULT_BOOTSTRAP
from odradek.client.types import to_dict


class CliError(Exception):
    """An expected failure: printed as `error: <message>` without a traceback."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class StrictParser(argparse.ArgumentParser):
    """No abbreviated flags (argparse took `--key k` for `--key-separator k` and stored
    the wrong key), and an unknown flag is reported by the subcommand it was given to,
    with that subcommand's usage. Subparsers are of the parser's own class."""

    deepest: StrictParser | None = None  # the last (sub)parser that parsed, see main()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        StrictParser.deepest = self
        return super().parse_known_args(args, namespace)


def parse_strictly(parser: StrictParser, argv: Any) -> argparse.Namespace:
    args, extra = parser.parse_known_args(argv)
    if extra:
        (StrictParser.deepest or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    return args  # type: ignore[no-any-return]


def bootstrap_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--bootstrap", "-b", "--bootstrap-server", dest="bootstrap",
        default=os.environ.get("ODRADEK_BOOTSTRAP") or DEFAULT_BOOTSTRAP,
        help="broker addresses, host:port[,host:port...]; --bootstrap-server is Kafka's "
             "name for it (env ODRADEK_BOOTSTRAP, default %(default)s)")
    parent.add_argument("--tls", action="store_true", default=None,
                        help="connect with TLS, trusting the system roots unless --tls-ca "
                             "(env ODRADEK_TLS=1; implied by any --tls-* flag)")
    parent.add_argument("--tls-ca", metavar="PEM",
                        help="CA bundle that signs the brokers' certificates "
                             "(env ODRADEK_TLS_CA)")
    parent.add_argument("--tls-cert", metavar="PEM",
                        help="client certificate, for mutual TLS (env ODRADEK_TLS_CERT)")
    parent.add_argument("--tls-key", metavar="PEM",
                        help="key of --tls-cert (env ODRADEK_TLS_KEY)")
    parent.add_argument("--username", metavar="NAME",
                        help="log in with SCRAM-SHA-512 as this user (env ODRADEK_USERNAME)")
    parent.add_argument("--password-file", metavar="FILE",
                        help="the password is the file's first line (env ODRADEK_PASSWORD "
                             "or ODRADEK_PASSWORD_FILE; never given on the command line)")
    return parent


def tls_options(args: argparse.Namespace) -> dict[str, Any]:
    """The client's connection keyword arguments from bootstrap_parent's flags: TLS and
    the SCRAM login (the client falls back to the ODRADEK_TLS_*, ODRADEK_USERNAME and
    ODRADEK_PASSWORD[_FILE] environment for those not given)."""
    options = {name: getattr(args, name, None) for name in ("tls", "tls_ca", "tls_cert",
                                                            "tls_key", "username")}
    path = getattr(args, "password_file", None)
    if path:
        from odradek.client.auth import read_password_file

        try:
            options["password"] = read_password_file(path)
        except OSError as exc:
            raise CliError(f"cannot read --password-file: {exc}") from None
    return options


def key_value(text: str) -> tuple[str, str]:
    """argparse type for k=v."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key.strip(), value


class KeyValueAction(argparse.Action):
    """Repeatable k=v flag collected into a dict."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        current = dict(getattr(namespace, self.dest, None) or {})
        assert isinstance(values, tuple)
        current[values[0]] = values[1]
        setattr(namespace, self.dest, current)


def add_config_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--config", "-c", dest="config", metavar="KEY=VALUE", type=key_value,
        action=KeyValueAction, default={}, help=help_text + " (repeatable)")


def parse_timestamp(text: str) -> int:
    """Milliseconds since the epoch, or an ISO 8601 date-time (UTC when no zone)."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither milliseconds since the epoch nor an ISO 8601 date-time"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


_DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_ISO_DURATION = re.compile(
    r"P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?")


def parse_duration_ms(text: str) -> int:
    """A duration in milliseconds: ISO 8601 as kafka-consumer-groups.sh takes it
    (P1DT2H, PT30M, PT0.5S), or a number with a unit (1500ms, 30s, 15m, 2h, 1d)."""
    text = text.strip()
    iso = _ISO_DURATION.fullmatch(text.upper())
    if iso and any(iso.groupdict().values()):
        return round(sum(float(v) * _DURATION_UNITS_MS[k] for k, v in iso.groupdict().items()
                         if v))
    short = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
    if short:
        return round(float(short[1]) * _DURATION_UNITS_MS[short[2]])
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a duration: ISO 8601 (PT30M, P1DT2H) or a number and a unit "
        "(1500ms, 30s, 15m, 2h, 1d)")


def unescape(text: str) -> str:
    """Lets separators be given as \\t or \\n on the command line."""
    return text.encode().decode("unicode_escape") if "\\" in text else text


def message_json(message: Any) -> str:
    """An answer of the client (odradek.client.types) as indented JSON for scripts: every
    field (zeros too: partition 0 is a partition), integers as numbers, lists for tuples.
    A list of answers becomes a JSON array."""
    if isinstance(message, (list, tuple)):
        return json.dumps([to_dict(m) for m in message], indent=2, ensure_ascii=False)
    return json.dumps(to_dict(message), indent=2, ensure_ascii=False)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print JSON instead of the table: every field, numbers as "
                             "numbers")
