"""A memory image (prepopulated cache) with odradek.streams: every instance holds the
whole product catalogue, read from its compacted topic before it serves, and answers
price requests from it without calling anyone. See README.md."""

from __future__ import annotations

import asyncio
from typing import Any

from odradek.streams import JSON, STR, App, serve, service_parser


def answer(product: str, row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:  # not in the catalogue: say so rather than stay silent
        return {"product": product, "unknown": True}
    return {"product": product, "price": row["price"]}


def build(bootstrap: str, state_dir: str) -> App:
    app = App(bootstrap, "memory-image", state_dir=state_dir)
    # A global table: all partitions on every instance, so a request keyed by its own id
    # finds any product without a repartition.
    catalogue = app.global_table("catalogue", STR, JSON)
    (app.stream("price-requests", STR, STR)
        .left_join(catalogue, answer, key_fn=lambda _request, product: product)
        .to("price-answers", STR, JSON))
    return app


async def main(bootstrap: str, state_dir: str, partitions: int) -> None:
    await serve(build(bootstrap, state_dir), partitions,
                {"catalogue": {"cleanup.policy": "compact"}, "price-requests": {}},
                lambda app: f"products held: {len(app.store('catalogue').all())}")


if __name__ == "__main__":
    args = service_parser(__doc__ or "").parse_args()
    asyncio.run(main(args.bootstrap, args.state_dir, args.partitions))
