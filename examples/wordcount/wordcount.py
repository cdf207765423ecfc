"""Word count with odradek.streams: lines in, a count per word out (topic word-counts and
the store `counts`, printed every few seconds). See README.md."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from odradek.client import Admin, TopicAlreadyExistsError
from odradek.streams import JSON, STR, App


def build(bootstrap: str, state_dir: str) -> App:
    app = App(bootstrap, "wordcount", state_dir=state_dir)
    (app.stream("lines", STR, STR)
        .flat_map(lambda _k, line: [(w.lower(), w) for w in line.split()], key_serde=STR)
        .group_by_key()
        .count("counts")
        .to("word-counts", STR, JSON))
    return app


async def main(args: argparse.Namespace) -> None:
    async with Admin(args.bootstrap) as admin:
        try:
            await admin.create_topic("lines", args.partitions)
        except TopicAlreadyExistsError:
            pass
    app = build(args.bootstrap, args.state_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094")
    parser.add_argument("--state-dir", default=".streams-state")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--print-every", type=float, default=5.0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(parser.parse_args()))
