"""Enrichment service with odradek.streams (event-carried state transfer): orders in,
each joined to its customer as the customers table stands when the order is processed,
enriched orders out. See README.md."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from odradek.streams import JSON, STR, App, serve, service_parser


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
    await serve(build(args.bootstrap, args.state_dir), args.partitions,
                {"customers": {"cleanup.policy": "compact"}, "orders": {}},
                lambda app: f"customers held here: {len(app.store('customers').all())}")


if __name__ == "__main__":
    parser = service_parser(__doc__ or "")
    asyncio.run(main(parser.parse_args()))
