"""The record codec, pure Python against compiled (odradek.records._fast), in one run:
build N records into 16 KiB batches (as the producer does) and read them back.

    .venv/bin/python bench/codec_bench.py [--records 200000] [--rounds 3]

Both go through the code BatchBuilder and decode_batch use (builder._finish,
reader._records), each codec's module plugged in; best round reported."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from types import ModuleType

from odradek.records import Compression, _pure, builder, parse_header, reader

BATCH_BYTES = 16384
TIMESTAMP = 1_700_000_000_000


def build_all(codec: ModuleType, n: int, value: bytes) -> list[bytes]:
    key = b"key-000042"
    headers = [("trace", b"0123456789")]
    batches = []
    buf = codec.RecordsBuffer()
    for i in range(n):
        buf.append(TIMESTAMP + i, key, value, headers)
        if buf.size_estimate >= BATCH_BYTES:
            batches.append(builder._finish(codec.frame_batch, buf, Compression.NONE, -1, -1,
                                           -1, False))
            buf = codec.RecordsBuffer()
    if len(buf):
        batches.append(builder._finish(codec.frame_batch, buf, Compression.NONE, -1, -1, -1,
                                       False))
    return batches


def read_all(codec: ModuleType, batches: list[bytes]) -> int:
    return sum(len(reader._records(codec.decode_records, memoryview(b), 0, parse_header(b)))
               for b in batches)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from odradek.records import _fast  # a bench of the compiled codec needs it built

    n = args.records
    codecs = {"pure": _pure, "compiled": _fast}
    print(f"{n} records per round, best of {args.rounds} (the codecs take turns, so a "
          "shared machine's load falls on both); records/s")
    for size in (100, 1024):
        value = b"v" * size
        assert build_all(_pure, 1000, value) == build_all(_fast, 1000, value)
        batches = {name: build_all(codec, n, value) for name, codec in codecs.items()}
        best: dict[tuple[str, str], float] = {}
        for _ in range(args.rounds):
            for name, codec in codecs.items():
                for what, fn in (("build", lambda c=codec, v=value: build_all(c, n, v)),
                                 ("read", lambda c=codec, b=batches[name]: read_all(c, b))):
                    t = timed(fn)
                    best[(name, what)] = min(t, best.get((name, what), t))
        for what in ("build", "read"):
            pure, fast = n / best[("pure", what)], n / best[("compiled", what)]
            print(f"{size:5d} B {what:5s}  pure {pure:10,.0f}  compiled {fast:10,.0f}  "
                  f"ratio {fast / pure:5.1f}x")


if __name__ == "__main__":
    main()
