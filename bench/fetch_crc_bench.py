"""What checking CRCs on read costs a fetch: PartitionLog.read of a whole log in 1 MiB
fetches, with the CRC-32C of every batch checked (the default) and without.

    .venv/bin/python bench/fetch_crc_bench.py [--mb 256] [--record-bytes 1024]

The log is written once to a temporary directory (page cache warm, as a tailing
consumer's reads mostly are); each mode reads it --rounds times, best round reported."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from odradek.records import encode_batch
from odradek.storage import LogConfig, PartitionLog


def fill(directory: Path, total: int, record_bytes: int, batch_bytes: int) -> PartitionLog:
    log = PartitionLog.open(directory, LogConfig(segment_bytes=256 << 20))
    per_batch = max(1, batch_bytes // record_bytes)
    value = b"x" * record_bytes
    data = encode_batch([(1_700_000_000_000, None, value)] * per_batch)
    written = 0
    while written < total:
        log.append(data)
        written += len(data)
    log.flush()
    return log


def read_all(log: PartitionLog, verify: bool) -> int:
    offset, end, size = 0, log.log_end_offset, 0
    while offset < end:
        result = log.read(offset, 1 << 20, verify=verify)
        size += len(result.data)
        offset = result.next_offset
    return size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--record-bytes", type=int, default=1024)
    parser.add_argument("--batch-bytes", type=int, default=16384)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = fill(Path(tmp), args.mb << 20, args.record_bytes, args.batch_bytes)
        best: dict[bool, float] = {}
        for _ in range(args.rounds):
            for verify in (False, True):
                started = time.perf_counter()
                size = read_all(log, verify)
                rate = size / (time.perf_counter() - started) / 1e6
                best[verify] = max(best.get(verify, 0.0), rate)
        log.close()
    off, on = best[False], best[True]
    print(f"{args.mb} MB, {args.record_bytes} B records, {args.batch_bytes} B batches: "
          f"read {off:,.0f} MB/s unchecked, {on:,.0f} MB/s with CRC checks "
          f"({(1 - on / off) * 100:.1f}% slower)")


if __name__ == "__main__":
    main()
