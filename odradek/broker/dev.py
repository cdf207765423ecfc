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
from odradek.security.certs import LOCAL_NAMES, Pki, make_pki
from odradek.security.tls import ServerTLS

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

TLS_BANNER = """
Odradek is running with TLS only (mutual TLS required): {count} broker(s) on {addrs}
data in {data}; a throwaway CA and certificates in {pki}

  export ODRADEK_BOOTSTRAP={boot}
  export ODRADEK_TLS_CA={ca}
  export ODRADEK_TLS_CERT={cert}
  export ODRADEK_TLS_KEY={key}
  odradek topic create orders --partitions 3
  echo 'hello' | odradek produce orders
  odradek consume orders --from-beginning
  # or per command: --tls-ca {ca} --tls-cert {cert} --tls-key {key}
  grpcurl -cacert {ca} -cert {cert} -key {key} {first} list

(Inside the repository use .venv/bin/odradek.) Press Ctrl-C to stop.
"""


def dev_settings(data_dir: Path, host: str, port: int, count: int,
                 tls: ServerTLS | None = None) -> list[BrokerSettings]:
    voter_ids = range(min(count, 3) if count >= 3 else count)
    voters = {i: f"{host}:{port + i}" for i in voter_ids}
    return [BrokerSettings(data_dir=data_dir / f"broker-{i}", host=host, port=port + i,
                           broker_id=i, voters=voters, tls=tls) for i in range(count)]


def dev_tls(data_dir: Path, host: str) -> tuple[ServerTLS, Pki]:
    """A throwaway CA, one broker identity shared by the dev brokers (SANs 127.0.0.1,
    localhost and --host) and a client certificate, under data_dir/tls."""
    sans = tuple(dict.fromkeys((*LOCAL_NAMES, host)))
    pki = make_pki(data_dir / "tls", sans=sans)
    return ServerTLS(pki.broker_cert, pki.broker_key, pki.ca, "required"), pki


async def _run(settings: list[BrokerSettings], pki: Pki | None = None) -> None:
    brokers = [Broker(s) for s in settings]
    for broker in brokers:
        await broker.start()
    addrs = [f"{s.host}:{b.port}" for s, b in zip(settings, brokers, strict=True)]
    fields = dict(count=len(brokers), addrs=", ".join(addrs), first=addrs[0],
                  boot=",".join(addrs), data=settings[0].data_dir.parent)
    if pki is None:
        print(BANNER.format(**fields), flush=True)
    else:
        print(TLS_BANNER.format(**fields, pki=pki.directory, ca=pki.ca, cert=pki.client_cert,
                                key=pki.client_key), flush=True)
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
    data_dir = Path(args.data_dir).resolve()
    tls, pki = dev_tls(data_dir, args.host) if getattr(args, "tls", False) else (None, None)
    settings = dev_settings(data_dir, args.host, args.port, count, tls)
    asyncio.run(_run(settings, pki))
    return 0
