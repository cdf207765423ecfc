"""The broker's flags as the configs it describes: each flag's value, and whether it was
set (on the command line or through its environment variable) or left at its default."""

from __future__ import annotations

import argparse
import os
from typing import Any

from odradek.broker.broker_configs import BrokerConfigEntry, Source

# Flags that are not settings: what to run, and --config (described per topic config).
_SKIPPED = {"help", "config", "func"}


def _built_in_defaults() -> dict[str, Any]:
    """The defaults the flags have with no ODRADEK_* variable set: the parser reads the
    environment when it is built, so it is built once more without them."""
    from odradek.cli.broker_cmd import add_broker_parser

    saved = {k: v for k, v in os.environ.items() if k.startswith("ODRADEK_")}
    for k in saved:
        del os.environ[k]
    try:
        sub = argparse.ArgumentParser().add_subparsers()
        parser = add_broker_parser(sub)
    finally:
        os.environ.update(saved)
    return {a.dest: a.default for a in parser._actions}


def _render(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def describe_flags(parser: argparse.ArgumentParser,
                   args: argparse.Namespace) -> tuple[BrokerConfigEntry, ...]:
    defaults = _built_in_defaults()
    out = []
    for action in parser._actions:
        if action.dest in _SKIPPED or not action.option_strings:
            continue
        value = getattr(args, action.dest, None)
        source = Source.DEFAULT if value == defaults.get(action.dest) else Source.STATIC
        doc = (action.help or "").replace("%(default)s", _render(defaults.get(action.dest)))
        out.append(BrokerConfigEntry(action.option_strings[0].lstrip("-"), _render(value),
                                     source, doc.replace("%%", "%")))
    return tuple(out)
