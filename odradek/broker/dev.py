"""`odradek dev` (what `make run` calls): a local cluster on loopback for trying things out.

Every broker runs in this one process, on consecutive ports, with its own data directory;
with three or more brokers the first three are the metadata voters."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from odradek.broker.main import setup_logging
from odradek.broker.server import Broker, BrokerSettings

BANNER = """
Odradek is running: {count} broker(s) on {addrs}
data in {data}

  export ODRADEK_BOOTSTRAP={boot}
  odradek topic create orders --partitions 3
  echo 'hello' | odradek produce orders
  odradek consume orders --from-beginning
  grpcurl -plaintext {first} list            # reflection is on
  grpcurl -plaintext {first} grpc.health.v1.Health/Check

(Inside the repository use .venv/bin/odradek.) Press Ctrl-C to stop.
"""


def dev_settings(data_dir: Path, host: str, port: int, count: int) -> list[BrokerSettings]:
    voter_ids = range(min(count, 3) if count >= 3 else count)
    voters = {i: f"{host}:{port + i}" for i in voter_ids}
    return [BrokerSettings(data_dir=data_dir / f"broker-{i}", host=host, port=port + i,
                           broker_id=i, voters=voters) for i in range(count)]


async def _run(settings: list[BrokerSettings]) -> None:
    brokers = [Broker(s) for s in settings]
    for broker in brokers:
        await broker.start()
    addrs = [f"{s.host}:{b.port}" for s, b in zip(settings, brokers, strict=True)]
    print(BANNER.format(count=len(brokers), addrs=", ".join(addrs), first=addrs[0],
                        boot=",".join(addrs), data=settings[0].data_dir.parent), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("stopping...", flush=True)
    for broker in brokers:
        await broker.stop()


def run_dev(args: argparse.Namespace) -> int:
    setup_logging(getattr(args, "log_level", "warning"))
    count = max(1, getattr(args, "brokers", 1))
    settings = dev_settings(Path(args.data_dir).resolve(), args.host, args.port, count)
    asyncio.run(_run(settings))
    return 0
