"""A super user's calls while many unauthenticated clients misbehave (issue 11's note).

One broker process (authorization on). First the admin's DescribeTopic is timed on the
idle broker; then `--clients` unauthenticated clients (one channel each) loop over what
an attacker without credentials can do: SCRAM starts never finished, oversized SCRAM
starts, Membership streams that never send, bytes that are no message; meanwhile the
admin's call is timed again and the broker's memory sampled. Prints p50/p99 of both
phases, the broker's RSS and what the misbehaving calls were answered.

    .venv/bin/python bench/misbehaving_clients.py --clients 1000 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.request_flood import PASSWORD, rss_kib, secured_broker, wait_for_login  # noqa: E402
from odradek.client import Admin  # noqa: E402
from odradek.security import scram  # noqa: E402
from odradek.v1 import groups_pb2 as gpb  # noqa: E402
from odradek.v1 import groups_pb2_grpc as gpb_grpc  # noqa: E402
from odradek.v1 import security_pb2 as spb  # noqa: E402
from odradek.v1 import security_pb2_grpc as spb_grpc  # noqa: E402


async def timed_calls(admin: Admin, until: float) -> list[float]:
    out = []
    while time.monotonic() < until:
        started = time.perf_counter()
        await admin.describe_topic("t")
        out.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.02)
    return out


async def misbehave(address: str, until: float, answers: Counter[str]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        security = spb_grpc.SecurityStub(channel)  # type: ignore[no-untyped-call]
        groups = gpb_grpc.GroupsStub(channel)  # type: ignore[no-untyped-call]
        garbage = channel.unary_unary("/odradek.v1.Admin/DescribeTopic")

        async def silent() -> AsyncIterator[gpb.MemberRequest]:
            await asyncio.sleep(3600)
            yield gpb.MemberRequest()

        held: list[grpc.aio.Call] = []
        while time.monotonic() < until:
            calls = [
                security.ScramStart(spb.ScramStartRequest(
                    mechanism=scram.MECHANISM,
                    client_first_message=scram.ClientExchange("mallory", "x").first()),
                    timeout=10),
                security.ScramStart(spb.ScramStartRequest(
                    mechanism=scram.MECHANISM, client_first_message="n,,n=" + "u" * 30_000),
                    timeout=10),
                garbage(b"\xff\xfe not a message", timeout=10),
            ]
            for call in calls:
                try:
                    await call
                    answers["OK"] += 1
                except grpc.aio.AioRpcError as exc:
                    answers[exc.code().name] += 1
            stream = groups.Membership(silent(), timeout=30)
            held.append(stream)
            if len(held) > 3:
                held.pop(0).cancel()
            await asyncio.sleep(0.2)
        for stream in held:
            stream.cancel()


def summary(name: str, samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"{name}: {len(samples)} calls, p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    with secured_broker() as (broker, pid):
        await wait_for_login(broker.address, "admin", PASSWORD)
        async with Admin(broker.address, username="admin", password=PASSWORD) as admin:
            await admin.create_topic("t", 1, 1)
            idle = await timed_calls(admin, time.monotonic() + args.seconds / 2)
            rss_idle = rss_kib(pid)
            answers: Counter[str] = Counter()
            until = time.monotonic() + args.seconds
            attackers = [asyncio.create_task(misbehave(broker.address, until, answers))
                         for _ in range(args.clients)]
            peak = 0

            async def sample() -> None:
                nonlocal peak
                while time.monotonic() < until:
                    peak = max(peak, rss_kib(pid))
                    await asyncio.sleep(0.1)

            sampler = asyncio.create_task(sample())
            await asyncio.sleep(2)  # let the clients connect
            busy = await timed_calls(admin, until)
            await asyncio.gather(*attackers, sampler, return_exceptions=True)
        print(summary("idle broker", idle) + f"; RSS {rss_idle / 1024:.0f} MiB")
        print(summary(f"with {args.clients} misbehaving clients", busy)
              + f"; peak RSS {peak / 1024:.0f} MiB")
        print(f"misbehaving calls answered: {dict(answers)}; serving: {broker.serving()}")


if __name__ == "__main__":
    asyncio.run(main())
