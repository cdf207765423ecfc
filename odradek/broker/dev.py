"""`odradek dev` (what `make run` calls): a local broker on loopback for trying things out."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from odradek.broker.main import setup_logging
from odradek.broker.server import Broker, BrokerSettings

BANNER = """
Odradek is running: broker 0 on {addr}, data in {data}

  odradek topic create orders --partitions 3 --bootstrap {addr}
  echo 'hello' | odradek produce orders --bootstrap {addr}
  odradek consume orders --from-beginning --bootstrap {addr}
  grpcurl -plaintext {addr} list            # reflection is on
  grpcurl -plaintext {addr} grpc.health.v1.Health/Check

(Inside the repository use .venv/bin/odradek.) Press Ctrl-C to stop.
"""


async def _run(settings: BrokerSettings) -> None:
    broker = Broker(settings)
    await broker.start()
    print(BANNER.format(addr=f"{settings.host}:{broker.port}", data=settings.data_dir),
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("stopping...", flush=True)
    await broker.stop()


def run_dev(args: argparse.Namespace) -> int:
    setup_logging(getattr(args, "log_level", "warning"))
    settings = BrokerSettings(data_dir=Path(args.data_dir).resolve(), host="127.0.0.1",
                              port=args.port)
    asyncio.run(_run(settings))
    return 0
