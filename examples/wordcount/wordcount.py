"""Word count with odradek.streams: lines in, a count per word out (topic word-counts and
the store `counts`, printed every few seconds). See README.md."""

from __future__ import annotations

import argparse
import asyncio

from odradek.streams import JSON, STR, App, ensure_topics, service_parser, stop_on_signals


def build(bootstrap: str, state_dir: str) -> App:
    app = App(bootstrap, "wordcount", state_dir=state_dir)
    (app.stream("lines", STR, STR)
        .flat_map(lambda _k, line: [(w.lower(), w) for w in line.split()], key_serde=STR)
        .group_by_key()
        .count("counts")
        .to("word-counts", STR, JSON))
    return app


async def main(args: argparse.Namespace) -> None:
    await ensure_topics(args.bootstrap, args.partitions, {"lines": {}})
    app = build(args.bootstrap, args.state_dir)
    stop = stop_on_signals()
    async with app:
        print("wordcount running", flush=True)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), args.print_every)
            except TimeoutError:
                top = sorted(app.store("counts").range(), key=lambda kv: -kv[1])[:10]
                print("top words (this instance):", top, flush=True)
    print("wordcount stopped", flush=True)


if __name__ == "__main__":
    parser = service_parser(__doc__ or "")
    parser.add_argument("--print-every", type=float, default=5.0)
    asyncio.run(main(parser.parse_args()))
