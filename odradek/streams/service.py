"""What a stream service's main needs around its App: its input topics made, a stop on
SIGINT/SIGTERM, and the command-line options every example takes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from odradek.client import Admin, TopicAlreadyExistsError

if TYPE_CHECKING:
    from odradek.streams.app import App

DEV_CLUSTER = "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"  # `make run`'s brokers


async def ensure_topics(bootstrap: str, partitions: int,
                        topics: dict[str, dict[str, str]]) -> None:
    """Makes the input topics a service reads (name -> configs) where they are missing."""
    async with Admin(bootstrap) as admin:
        for topic, configs in topics.items():
            try:
                await admin.create_topic(topic, partitions, configs=configs)
            except TopicAlreadyExistsError:
                pass  # made by an earlier run, another instance or by hand


def stop_on_signals() -> asyncio.Event:
    """An event set on SIGINT or SIGTERM, for a service's main loop to end cleanly (a
    clean stop leaves checkpoints, so the next start does not replay its changelogs)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def service_parser(description: str) -> argparse.ArgumentParser:
    """--bootstrap (default: `make run`'s cluster), --state-dir, --partitions (of the
    input topics it makes); logs at INFO, so that restores are seen."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", default=DEV_CLUSTER)
    parser.add_argument("--state-dir", default=".streams-state")
    parser.add_argument("--partitions", type=int, default=3)
    return parser


async def serve(app: App, partitions: int, topics: dict[str, dict[str, str]],
                before_stop: Callable[[App], str] | None = None) -> None:
    """Makes the input topics, runs the app until SIGINT or SIGTERM, then stops it
    cleanly; prints `<application id> running` and `... stopped` (scripts and tests
    wait for them) and, before stopping, what before_stop says."""
    await ensure_topics(app.bootstrap, partitions, topics)
    stop = stop_on_signals()
    async with app:
        print(f"{app.application_id} running", flush=True)
        await stop.wait()
        if before_stop is not None:
            print(before_stop(app), flush=True)
    print(f"{app.application_id} stopped", flush=True)
