"""`odradek broker`: parse the CLI's arguments into settings and serve."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from odradek.broker.server import BrokerSettings, serve


def parse_configs(pairs: list[str] | None) -> dict[str, str]:
    configs = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --config expects key=value, got {pair!r}")
        configs[key.strip()] = value.strip()
    return configs


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_broker(args: argparse.Namespace) -> int:
    setup_logging(getattr(args, "log_level", "info"))
    settings = BrokerSettings(
        data_dir=Path(args.data_dir), host=args.host, port=args.port,
        broker_id=args.broker_id, topic_defaults=parse_configs(args.config))
    asyncio.run(serve(settings))
    return 0
