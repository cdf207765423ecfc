"""What the durable-end record (storage/durable_end.py) costs a flush: one partition log,
an append of one batch then a flush, repeated, with the record written (the default) and
with it skipped, alternating rounds in one run so that both see the same disk.

    .venv/bin/python bench/durable_end_bench.py [--flushes 1000] [--rounds 3]

This is the worst case, flush.messages=1 with one partition (every flush pays its own
record); with the default policy a log is flushed only at a roll or a stop."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from odradek.records import encode_batch
from odradek.storage import LogConfig, PartitionLog

BATCH = encode_batch([(1_700_000_000_000, b"k", b"x" * 1000)])


def flushes_per_second(parent: Path, flushes: int, record: bool) -> float:
    directory = Path(tempfile.mkdtemp(dir=parent))
    log = PartitionLog.open(directory, LogConfig())
    if not record:
        log._durable_end.record_flushed = lambda *args: None  # type: ignore[method-assign]
    started = time.perf_counter()
    for _ in range(flushes):
        log.append(BATCH)
        log.flush()
    elapsed = time.perf_counter() - started
    log.close()
    shutil.rmtree(directory)
    return flushes / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flushes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path.cwd(),
                        help="where the logs go (the disk to measure; default: here)")
    args = parser.parse_args()
    for i in range(args.rounds):
        without = flushes_per_second(args.dir, args.flushes, False)
        with_record = flushes_per_second(args.dir, args.flushes, True)
        print(f"round {i + 1}: {without:,.0f} flushes/s without the record, "
              f"{with_record:,.0f} with it (ratio {with_record / without:.2f})")


if __name__ == "__main__":
    main()
