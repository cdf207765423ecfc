"""CQRS with odradek.streams: the write side publishes what happened (orders placed, topic
orders-placed); a stream job keeps the read model, a summary per customer in the store
`customer-summary`, and serves it to readers over interactive queries, with no database
in between. See README.md."""

from __future__ import annotations

import asyncio
from typing import Any

from odradek.streams import JSON, STR, App, serve, service_parser


def summarize(_customer: str, order: dict[str, Any], held: dict[str, Any]) -> dict[str, Any]:
    return {"orders": held["orders"] + 1, "total": held["total"] + order["amount"],
            "last_order": order["order"]}


def build(bootstrap: str, state_dir: str, query_address: str) -> App:
    # query_address: where this instance answers queries (port 0: any free port; the
    # instances' registry says which, so `odradek streams query` and the other instances
    # find it). Orders are keyed by customer, so no repartition is needed.
    app = App(bootstrap, "cqrs", state_dir=state_dir, query_address=query_address)
    (app.stream("orders-placed", STR, JSON).group_by_key()
        .aggregate("customer-summary", lambda: {"orders": 0, "total": 0}, summarize))
    return app


async def main(bootstrap: str, state_dir: str, partitions: int, query_address: str) -> None:
    await serve(build(bootstrap, state_dir, query_address), partitions, {"orders-placed": {}})


if __name__ == "__main__":
    parser = service_parser(__doc__ or "")
    parser.add_argument("--query-address", default="127.0.0.1:0",
                        help="host:port to answer interactive queries on (default: any port)")
    args = parser.parse_args()
    asyncio.run(main(args.bootstrap, args.state_dir, args.partitions, args.query_address))
