"""The latest-versioned pattern with odradek.streams: every version of every product in a
regular topic (the history), and a stream job that keeps, per product, the highest version
seen in a compacted topic (the latest, which compaction keeps small). See README.md."""

from __future__ import annotations

import asyncio
from typing import Any

from odradek.streams import JSON, STR, App, serve, service_parser


def newer(held: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    # Versions may arrive out of order (two writers, a replay): the higher one wins, so a
    # late old version never replaces the current one in the compacted topic.
    return incoming if incoming["version"] > held["version"] else held


def build(bootstrap: str, state_dir: str) -> App:
    app = App(bootstrap, "latest-versioned", state_dir=state_dir)
    (app.stream("product-versions", STR, JSON).group_by_key()
        .reduce("latest", newer).to("products-latest", STR, JSON))
    return app


async def main(bootstrap: str, state_dir: str, partitions: int) -> None:
    # The history keeps everything (no retention by time); the latest is compacted. The
    # app would make products-latest itself, but without the compact policy.
    await serve(build(bootstrap, state_dir), partitions, {
        "product-versions": {"retention.ms": "-1"},
        "products-latest": {"cleanup.policy": "compact"}})


if __name__ == "__main__":
    args = service_parser(__doc__ or "").parse_args()
    asyncio.run(main(args.bootstrap, args.state_dir, args.partitions))
