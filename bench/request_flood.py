"""Broker memory under a flood of oversized requests (issue 11, item 1).

Starts one broker process (authorization on) and, from `--clients` channels at once,
sends unauthenticated ScramStart calls of each size given, `--rounds` times, while it
samples the broker's resident memory. Prints, per size, the peak RSS seen, the broker's
VmHWM afterwards, what the calls were answered and how long the flood took; then checks
that the admin still logs in.

    .venv/bin/python bench/request_flood.py --sizes 100000000,40000000,1000000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from odradek.v1 import security_pb2 as spb  # noqa: E402
from odradek.v1 import security_pb2_grpc as spb_grpc  # noqa: E402
from tests.brokers import BrokerProcess  # noqa: E402
from tests.integration.test_acl import wait_for_login  # noqa: E402

PASSWORD = "admin-secret"


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@contextlib.contextmanager
def secured_broker() -> Iterator[tuple[BrokerProcess, int]]:
    """A broker process with authorization on and the admin user, and its pid."""
    os.environ["ODRADEK_BOOTSTRAP_PASSWORD"] = PASSWORD
    with tempfile.TemporaryDirectory() as tmp:
        broker = BrokerProcess(Path(tmp) / "b", extra_args=[
            "--authorization", "on", "--super-users", "User:admin",
            "--bootstrap-user", "admin"])
        try:
            broker.start()
            assert broker.proc is not None
            yield broker, broker.proc.pid
        finally:
            broker.stop()


async def flood(address: str, pid: int, clients: int, size: int,
                rounds: int) -> tuple[int, Counter[str], float]:
    channels = [grpc.aio.insecure_channel(address, options=[
        ("grpc.max_send_message_length", -1)]) for _ in range(clients)]
    answers: Counter[str] = Counter()
    peak = 0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kib(pid))
            await asyncio.sleep(0.02)

    async def one(channel: grpc.aio.Channel) -> None:
        stub = spb_grpc.SecurityStub(channel)  # type: ignore[no-untyped-call]
        message = "n,,n=" + "u" * size + ",r=nonce"
        for _ in range(rounds):
            try:
                await stub.ScramStart(spb.ScramStartRequest(
                    mechanism="SCRAM-SHA-512", client_first_message=message), timeout=120)
                answers["OK"] += 1
            except grpc.aio.AioRpcError as exc:
                answers[f"{exc.code().name}: {(exc.details() or '')[:90]}"] += 1

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    try:
        await asyncio.gather(*(one(c) for c in channels))
    finally:
        elapsed = time.monotonic() - started
        done.set()
        await sampler
        for c in channels:
            await c.close()
    return peak, answers, elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sizes", default="100000000,40000000,1000000",
                        help="user name lengths, comma-separated")
    args = parser.parse_args()
    with secured_broker() as (broker, pid):
        print(f"idle broker: RSS {rss_kib(pid) / 1024:.0f} MiB")
        for size in (int(s) for s in args.sizes.split(",")):
            peak, answers, elapsed = await flood(broker.address, pid, args.clients,
                                                 size, args.rounds)
            print(f"{args.clients} clients x {args.rounds} ScramStart of {size:,} bytes: "
                  f"peak RSS {peak / 1024:.0f} MiB, VmHWM "
                  f"{rss_kib(pid, 'VmHWM') / 1024:.0f} MiB, {elapsed:.1f} s; "
                  f"answers {dict(answers)}")
        await wait_for_login(broker.address, "admin", PASSWORD)
        print(f"admin still logs in; broker serving: {broker.serving()}")


if __name__ == "__main__":
    asyncio.run(main())
