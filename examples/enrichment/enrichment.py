"""Enrichment service with odradek.streams (event-carried state transfer): orders in,
each joined to its customer as the customers table stands when the order is processed,
enriched orders out. See README.md."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from odradek.client import Admin, TopicAlreadyExistsError
from odradek.streams import JSON, STR, App


def enrich(order: dict[str, Any], customer: dict[str, Any] | None) -> dict[str, Any]:
    # A left join: an order whose customer is not known (yet) still goes out, marked so,
    # rather than vanishing; the consumer downstream decides what that means.
    return {**order, "customer": customer if customer is not None else {"unknown": True}}


def build(bootstrap: str, state_dir: str) -> App:
    app = App(bootstrap, "enrichment", state_dir=state_dir)
    # Orders are keyed by customer id, so they meet their customer's row in one task.
    customers = app.table("customers", STR, JSON)
    app.stream("orders", STR, JSON).left_join(customers, enrich).to("orders-enriched", STR, JSON)
    return app


async def main(args: argparse.Namespace) -> None:
    async with Admin(args.bootstrap) as admin:
        for topic, configs in (("customers", {"cleanup.policy": "compact"}), ("orders", {})):
            try:
                await admin.create_topic(topic, args.partitions, configs=configs)
            except TopicAlreadyExistsError:
                pass
    app = build(args.bootstrap, args.state_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with app:
        print("enrichment running", flush=True)
        await stop.wait()
        print(f"customers held here: {len(app.store('customers').all())}", flush=True)
    print("enrichment stopped", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094")
    parser.add_argument("--state-dir", default=".streams-state")
    parser.add_argument("--partitions", type=int, default=3)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(parser.parse_args()))
