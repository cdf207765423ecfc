"""An orders service with event sourcing on odradek.streams: commands in (topic
order-commands), events out (topic order-events), each order's state folded from what it
was told and rebuilt from its changelog when an instance restarts. See README.md."""

from __future__ import annotations

import asyncio
from typing import Any

from odradek.streams import JSON, STR, App, serve, service_parser

# command -> (the state it needs, the state it leads to)
TRANSITIONS = {"create": (None, "created"), "pay": ("created", "paid"),
               "ship": ("paid", "shipped"), "cancel": ("created", "cancelled")}


def decide(order_id: str, command: dict[str, Any], held: dict[str, Any]) -> dict[str, Any]:
    """The order's next state and the event that says what happened. A command that does
    not fit the state is not an error of the service: it becomes a rejection event, so
    whoever sent it learns why."""
    needs, leads_to = TRANSITIONS.get(command.get("type", ""), ("", None))
    if leads_to is None or held["state"] != needs:
        return {"state": held["state"], "event": {
            "type": "CommandRejected", "order": order_id, "command": command.get("type"),
            "state": held["state"]}}
    return {"state": leads_to, "event": {"type": f"Order{leads_to.capitalize()}",
                                         "order": order_id}}


def build(bootstrap: str, state_dir: str) -> App:
    app = App(bootstrap, "orders", state_dir=state_dir)
    # Commands are keyed by order id: one task decides for an order, in command order.
    (app.stream("order-commands", STR, JSON).group_by_key()
        .aggregate("orders", lambda: {"state": None, "event": None}, decide)
        .to_stream().map_values(lambda decided: decided["event"])
        .to("order-events", STR, JSON))
    return app


async def main(bootstrap: str, state_dir: str, partitions: int) -> None:
    await serve(build(bootstrap, state_dir), partitions, {"order-commands": {}})


if __name__ == "__main__":
    args = service_parser(__doc__ or "").parse_args()
    asyncio.run(main(args.bootstrap, args.state_dir, args.partitions))
