"""State stores: an embedded key-value engine per task and store, keys and values bytes.

LMDB is the engine (bench/store_bench.py measured it against RocksDB through rocksdict and
sqlite3; docs/architecture.md has the figures and the reasons). MemoryStore has the same
contract for tests and for the in-memory driver."""

from __future__ import annotations

import bisect
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import lmdb


class KeyValueStore(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def range(self, lo: bytes | None = None, hi: bytes | None = None
              ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with lo <= key < hi in key order (None: unbounded)."""
        ...

    def commit(self) -> None:
        """Makes the writes so far durable locally (a task calls it per batch)."""
        ...

    def size(self) -> int:
        """How many keys it holds (as of the last commit), for metrics."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self._data[key] = value

    def delete(self, key: bytes) -> None:
        self._data.pop(key, None)

    def range(self, lo: bytes | None = None, hi: bytes | None = None
              ) -> Iterator[tuple[bytes, bytes]]:
        keys = sorted(self._data)
        start = 0 if lo is None else bisect.bisect_left(keys, lo)
        for key in keys[start:]:
            if hi is not None and key >= hi:
                return
            yield key, self._data[key]

    def size(self) -> int:
        return len(self._data)

    def commit(self) -> None:
        """Nothing to make durable: the in-memory store lives as long as its task."""

    def close(self) -> None:
        """Nothing to release."""


class LmdbStore:
    """One LMDB environment per task and store. Writes go into one write transaction that
    commit() ends (a task commits per processed batch, so LMDB's per-transaction cost is
    paid once per batch); reads inside it see the batch's own writes. No fsync per commit:
    the changelog is the durable copy, and a store not closed cleanly is rebuilt from it."""

    MAP_SIZE = 1 << 34  # address space only; the file grows with the data

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._env = lmdb.open(str(path), map_size=self.MAP_SIZE, sync=False, metasync=False,
                              max_dbs=0, lock=True)
        self._txn: lmdb.Transaction | None = None

    def _write(self) -> lmdb.Transaction:
        if self._txn is None:
            self._txn = self._env.begin(write=True)
        return self._txn

    def get(self, key: bytes) -> bytes | None:
        if self._txn is not None:
            got = self._txn.get(key)
        else:
            with self._env.begin() as txn:
                got = txn.get(key)
        return None if got is None else bytes(got)

    def put(self, key: bytes, value: bytes) -> None:
        self._write().put(key, value)

    def delete(self, key: bytes) -> None:
        self._write().delete(key)

    def range(self, lo: bytes | None = None, hi: bytes | None = None
              ) -> Iterator[tuple[bytes, bytes]]:
        # Materialized under one read transaction: a caller may write while iterating.
        txn = self._txn or self._env.begin()
        try:
            cursor = txn.cursor()
            found = cursor.set_range(lo) if lo is not None else cursor.first()
            out: list[tuple[bytes, bytes]] = []
            while found:
                key = bytes(cursor.key())
                if hi is not None and key >= hi:
                    break
                out.append((key, bytes(cursor.value())))
                found = cursor.next()
        finally:
            if txn is not self._txn:
                txn.abort()
        yield from out

    def commit(self) -> None:
        if self._txn is not None:
            self._txn.commit()
            self._txn = None

    def size(self) -> int:
        return int(self._env.stat()["entries"])

    def close(self) -> None:
        self.commit()
        self._env.close()

    @staticmethod
    def wipe(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
