"""Put/get throughput of the embedded key-value engines a streams state store could use:
lmdb and rocksdict (RocksDB), with sqlite3 (stdlib) for reference.

    .venv/bin/python bench/store_bench.py [--records 200000]

Puts come in batches of --batch (a task writes the records of one poll, then commits),
keys are 16-byte counters in random order, values 64 bytes; gets read every key back in
random order; get+put reads each key and writes it back (an aggregation's pattern).
Each engine writes to a fresh temporary directory. rocksdict is not a dependency of
Odradek: `pip install rocksdict` to run this."""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import lmdb
import rocksdict

Engine = tuple[Callable[[list[tuple[bytes, bytes]]], None], Callable[[bytes], bytes | None]]


@contextmanager
def lmdb_engine(path: str) -> Iterator[Engine]:
    env = lmdb.open(path, map_size=1 << 32, sync=False, metasync=False)

    def put(items: list[tuple[bytes, bytes]]) -> None:
        with env.begin(write=True) as txn:
            for k, v in items:
                txn.put(k, v)

    reads: list[lmdb.Transaction] = []

    def get(k: bytes) -> bytes | None:
        if not reads:  # a read transaction sees the writes committed before it began
            reads.append(env.begin())
        got = reads[0].get(k)
        return None if got is None else bytes(got)

    try:
        yield put, get
    finally:
        for txn in reads:
            txn.abort()
        env.close()


@contextmanager
def rocks_engine(path: str) -> Iterator[Engine]:
    db = rocksdict.Rdict(path, options=rocksdict.Options(raw_mode=True))

    def put(items: list[tuple[bytes, bytes]]) -> None:
        batch = rocksdict.WriteBatch(raw_mode=True)
        for k, v in items:
            batch.put(k, v)
        db.write(batch)

    def get(k: bytes) -> bytes | None:
        got = db.get(k)
        return None if got is None else bytes(got)

    try:
        yield put, get
    finally:
        db.close()


@contextmanager
def sqlite_engine(path: str) -> Iterator[Engine]:
    db = sqlite3.connect(os.path.join(path, "s.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")

    def put(items: list[tuple[bytes, bytes]]) -> None:
        with db:
            db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", items)

    def get(k: bytes) -> bytes | None:
        row = db.execute("SELECT v FROM kv WHERE k = ?", (k,)).fetchone()
        return None if row is None else bytes(row[0])

    try:
        yield put, get
    finally:
        db.close()


def run(name: str, engine: Callable[[str], Any], records: int, batch: int) -> None:
    rng = random.Random(1)
    keys = [i.to_bytes(16, "big") for i in range(records)]
    rng.shuffle(keys)
    value = bytes(64)
    with tempfile.TemporaryDirectory() as path, engine(path) as (put, get):
        t0 = time.perf_counter()
        for i in range(0, records, batch):
            put([(k, value) for k in keys[i:i + batch]])
        t_put = time.perf_counter() - t0
        rng.shuffle(keys)
        t0 = time.perf_counter()
        for k in keys:
            assert get(k) is not None
        t_get = time.perf_counter() - t0
        # An aggregation's pattern: read the key's value, write the new one, per record.
        t0 = time.perf_counter()
        for i in range(0, records, batch):
            put([(k, get(k) or value) for k in keys[i:i + batch]])
        t_rmw = time.perf_counter() - t0
    print(f"{name:8s} put {records / t_put:>10,.0f}/s   get {records / t_get:>10,.0f}/s"
          f"   get+put {records / t_rmw:>10,.0f}/s")


if __name__ == "__main__":


    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    for name, engine in [("lmdb", lmdb_engine), ("rocksdb", rocks_engine),
                         ("sqlite3", sqlite_engine)]:
        run(name, engine, args.records, args.batch)
