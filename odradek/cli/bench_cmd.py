"""`odradek bench produce|consume`: throughput and latency of a running cluster."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from odradek.cli.common import bootstrap_parent, tls_options
from odradek.client.admin import Admin
from odradek.client.consumer import Consumer
from odradek.client.delivery import RecordFuture
from odradek.client.errors import OdradekError
from odradek.client.producer import Producer
from odradek.records import Compression

MB = 1_000_000  # bytes: MB/s here means 10^6 bytes per second, as dd reports it


def add_bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="measure produce and consume throughput")
    bsub = bench.add_subparsers(dest="bench_command", metavar="KIND", required=True)

    p = bsub.add_parser("produce", parents=[bootstrap_parent()],
                        help="send N records as fast as possible")
    p.add_argument("--topic", default="bench")
    p.add_argument("--records", "-n", type=int, default=100_000)
    p.add_argument("--record-size", type=int, default=1024, help="value bytes per record")
    p.add_argument("--partitions", type=int, default=1,
                   help="partitions when the topic is created (default %(default)s)")
    p.add_argument("--replication-factor", type=int, default=0)
    p.add_argument("--acks", default="quorum", choices=["quorum", "leader", "all", "1", "-1"])
    p.add_argument("--compression", default="none",
                   choices=[c.name.lower() for c in Compression])
    p.add_argument("--linger-ms", type=float, default=5)
    p.add_argument("--batch-size", type=int, default=256 * 1024)
    p.add_argument("--max-request-size", type=int, default=4 * 1024 * 1024)
    p.add_argument("--rate", type=float, default=0,
                   help="records per second to aim for (0: as fast as possible)")
    p.add_argument("--latency-every", type=int, default=0, metavar="N",
                   help="time the delivery of every Nth record (default: every one with "
                        "--rate, every 16th without)")
    p.add_argument("--json", action="store_true", help="also print one JSON line of results")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-idempotence", action="store_true",
                   help="send batches without producer id and sequence numbers")
    p.set_defaults(func=run_produce)

    c = bsub.add_parser("consume", parents=[bootstrap_parent()],
                        help="read N records from the beginning")
    c.add_argument("--topic", default="bench")
    c.add_argument("--records", "-n", type=int,
                   help="records to read (default: all there are when it starts)")
    c.add_argument("--max-bytes", type=int, default=8 * 1024 * 1024,
                   help="bytes per fetch (default %(default)s)")
    c.add_argument("--json", action="store_true", help="also print one JSON line of results")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=run_consume)


class Progress:
    """A one-line text progress bar on stderr."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self.total = max(total, 1)
        self.label = label
        self.enabled = enabled
        self.start = time.perf_counter()
        self._last = 0.0

    def update(self, done: int, nbytes: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        frac = min(done / self.total, 1.0)
        width = 30
        filled = int(frac * width)
        elapsed = max(now - self.start, 1e-9)
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {frac * 100:5.1f}% "
            f"{done}/{self.total} {done / elapsed:,.0f} rec/s {nbytes / MB / elapsed:,.1f} MB/s ")
        sys.stderr.flush()

    def finish(self, done: int, nbytes: int) -> None:
        if self.enabled:
            self.update(done, nbytes, force=True)
            sys.stderr.write("\n")
            sys.stderr.flush()


def show_progress(args: argparse.Namespace) -> bool:
    """Carriage returns make a mess of pipes and files: a bar only on a terminal."""
    return not args.no_progress and sys.stderr.isatty()


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def ensure_topic(bootstrap: str, topic: str, partitions: int, rf: int,
                       **tls: Any) -> None:
    async with Admin(bootstrap, **tls) as admin:
        try:
            await admin.create_topic(topic, partitions, rf)
        except OdradekError as exc:
            if exc.reason != "TOPIC_ALREADY_EXISTS":
                raise


async def produce_bench(args: argparse.Namespace) -> dict[str, Any]:
    await ensure_topic(args.bootstrap, args.topic, args.partitions, args.replication_factor,
                       **tls_options(args))
    n = args.records
    size = args.record_size
    payloads = [os.urandom(size) for _ in range(16)]
    latencies: list[float] = []
    failures: list[BaseException] = []
    progress = Progress(n, "produce", show_progress(args))
    clock = time.perf_counter
    lat_append = latencies.append
    # A timing callback per record costs the client more than the record itself (at
    # 100 B): flat out, a sample of the records is timed; failures are counted by the
    # producer for every record.
    every = args.latency_every or (1 if args.rate > 0 else 16)

    def on_delivery(sent: float) -> Callable[[RecordFuture], None]:
        def delivered(fut: RecordFuture) -> None:
            if fut.cancelled():
                return
            exc = fut.exception()
            if exc is not None:
                failures.append(exc)
            else:
                lat_append(clock() - sent)

        return delivered

    async with Producer(args.bootstrap, **tls_options(args), linger_ms=args.linger_ms,
                        batch_size=args.batch_size,
                        compression=args.compression, acks=args.acks,
                        max_request_size=args.max_request_size,
                        enable_idempotence=False if args.no_idempotence else None) as producer:
        topic = args.topic
        send = producer.send
        metrics = producer.metrics
        interval = 1 / args.rate if args.rate > 0 else 0.0
        start = clock()
        for i in range(n):
            if interval:
                due = start + i * interval
                delay = due - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
            if i % every:
                await send(topic, payloads[i & 15])
            else:
                t = clock()
                (await send(topic, payloads[i & 15])).add_done_callback(on_delivery(t))
            if i & 1023 == 0:
                done = metrics()["record-send-total"]
                progress.update(done, done * size)
                if failures or metrics()["record-error-total"]:
                    break
        await producer.flush()
        elapsed = clock() - start
        counts = metrics()
    delivered, failed = counts["record-send-total"], counts["record-error-total"]
    progress.finish(delivered, delivered * size)
    if failures or failed:
        exc = failures[0] if failures else OdradekError(
            f"{failed} of {n} records were not delivered", "DELIVERY_FAILED")
        raise exc if isinstance(exc, OdradekError) else OdradekError(str(exc))
    latencies.sort()
    return {
        "bench": "produce", "topic": args.topic, "records": n, "record_size": size,
        "partitions": args.partitions, "acks": args.acks, "compression": args.compression,
        "batch_size": args.batch_size, "linger_ms": args.linger_ms,
        "seconds": round(elapsed, 4), "latency_samples": len(latencies),
        "records_per_s": round(n / elapsed, 1),
        "mb_per_s": round(n * size / MB / elapsed, 2),
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50) * 1000, 3),
            "p95": round(_percentile(latencies, 0.95) * 1000, 3),
            "p99": round(_percentile(latencies, 0.99) * 1000, 3),
            "p99.9": round(_percentile(latencies, 0.999) * 1000, 3),
            "max": round((latencies[-1] if latencies else 0) * 1000, 3),
        },
    }


async def consume_bench(args: argparse.Namespace) -> dict[str, Any]:
    async with Consumer(args.bootstrap, **tls_options(args), max_bytes=args.max_bytes,
                        auto_offset_reset="earliest",
                        fetch_max_wait_ms=100, check_crcs=True) as consumer:
        tps = await consumer.partitions_for(args.topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(tps)
        begins = await consumer.beginning_offsets(tps)
        target = args.records
        if target is None:
            target = sum(ends[tp] - begins[tp] for tp in tps)
        progress = Progress(target, "consume", show_progress(args))
        count = 0
        nbytes = 0
        clock = time.perf_counter
        start = last = clock()
        idle = 0
        while count < target:
            # Never more than asked for: a fetch returns whole batches.
            records = await consumer.poll(1000, max_records=target - count)
            if not records:
                idle += 1
                if args.records is None and all(
                        await asyncio.gather(*(_at_end(consumer, tp, ends[tp]) for tp in tps))):
                    progress.total = max(count, 1)  # offsets had gaps: fewer records
                    break
                if idle >= 10:
                    break
                continue
            idle = 0
            count += len(records)
            for r in records:
                nbytes += len(r.value) if r.value else 0
                if r.key:
                    nbytes += len(r.key)
            last = clock()
            progress.update(count, nbytes)
        # Up to the last record: the polls that found nothing (fewer records than asked
        # for) measure waiting, not reading.
        elapsed = last - start
    progress.finish(count, nbytes)
    return {
        "bench": "consume", "topic": args.topic, "records": count,
        "seconds": round(elapsed, 4),
        "records_per_s": round(count / elapsed, 1) if elapsed else 0.0,
        "mb_per_s": round(nbytes / MB / elapsed, 2) if elapsed else 0.0,
        "bytes": nbytes,
    }


async def _at_end(consumer: Consumer, tp: Any, end: int) -> bool:
    return await consumer.position(tp) >= end


def _report(result: dict[str, Any], as_json: bool) -> None:
    if result["bench"] == "produce":
        lat = result["latency_ms"]
        print(f"produced {result['records']} records of {result['record_size']} B in "
              f"{result['seconds']:.2f} s: {result['records_per_s']:,.0f} records/s, "
              f"{result['mb_per_s']:,.1f} MB/s; latency ms p50 {lat['p50']:.2f} "
              f"p95 {lat['p95']:.2f} p99 {lat['p99']:.2f} max {lat['max']:.2f}")
    else:
        print(f"consumed {result['records']} records in {result['seconds']:.2f} s: "
              f"{result['records_per_s']:,.0f} records/s, {result['mb_per_s']:,.1f} MB/s")
    if as_json:
        print(json.dumps(result))
    sys.stdout.flush()


async def run_produce(args: argparse.Namespace) -> int:
    _report(await produce_bench(args), args.json)
    return 0


async def run_consume(args: argparse.Namespace) -> int:
    _report(await consume_bench(args), args.json)
    return 0
