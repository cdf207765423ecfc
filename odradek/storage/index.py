"""Sparse indexes of one segment, kept in memory and appended to a file.

Both are lists of fixed-size big-endian entries sorted by their key:
  `.index`      relative offset int32 -> file position int32   (8 bytes an entry)
  `.timeindex`  timestamp int64 -> relative offset int32        (12 bytes an entry)
An entry is added every index.interval.bytes of log, so a lookup lands at most that many
bytes before the batch it looks for. The files hold nothing the log does not: when one is
missing or fails the checks in `load`, the segment rebuilds it from the log.
"""

from __future__ import annotations

import os
import struct
from array import array
from bisect import bisect_right
from pathlib import Path


class _Index:
    KEY = "i"
    VALUE = "i"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys = array(self.KEY)
        self.values = array(self.VALUE)
        self._struct = struct.Struct(">" + self.KEY + self.VALUE)
        self.entry_size = self._struct.size
        self._pending = bytearray()
        self._written = 0  # entries in the file
        self._fd: int | None = None
        self._dirty = False  # written since the last fsync

    def __len__(self) -> int:
        return len(self.keys)

    def load(self) -> bool:
        """Reads the file; False (and empty) when it is missing or malformed."""
        self.clear()
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return False
        if len(raw) % self.entry_size:
            return False
        keys = array(self.KEY)
        values = array(self.VALUE)
        for key, value in self._struct.iter_unpack(raw):
            keys.append(key)
            values.append(value)
        self.keys = keys
        self.values = values
        self._written = len(keys)
        return True

    def clear(self) -> None:
        self.keys = array(self.KEY)
        self.values = array(self.VALUE)
        self._pending.clear()
        self._written = 0

    def add(self, key: int, value: int) -> None:
        self.keys.append(key)
        self.values.append(value)
        self._pending += self._struct.pack(key, value)

    def mark_written(self) -> None:
        """The file already holds exactly the entries in memory."""
        self._pending.clear()
        self._written = len(self.keys)

    def floor(self, key: int) -> int:
        """Position in the lists of the last entry with key <= key, or -1."""
        return bisect_right(self.keys, key) - 1

    def write(self) -> None:
        """Appends pending entries to the file (one write call)."""
        if not self._pending:
            return
        fd = self._open()
        data = bytes(self._pending)
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], self._written * self.entry_size + written)
        self._written += len(data) // self.entry_size
        self._pending.clear()
        self._dirty = True

    def ensure_file(self) -> None:
        self._open()

    def rewrite(self) -> None:
        """Replaces the file with the entries in memory (after a rebuild)."""
        self._pending.clear()
        self.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = b"".join(self._struct.pack(k, v)
                        for k, v in zip(self.keys, self.values, strict=True))
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._pending.clear()
        self._written = len(self.keys)
        self._dirty = False

    def flush(self, close: bool = False) -> None:
        self.write()
        if self._fd is not None:
            if self._dirty:
                os.fsync(self._fd)
                self._dirty = False
            if close:
                os.close(self._fd)
                self._fd = None

    def close(self) -> None:
        self.write()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        return self._fd


class OffsetIndex(_Index):
    """relative offset -> byte position of the batch that starts there."""

    KEY = "i"
    VALUE = "i"

    def lookup(self, relative_offset: int) -> tuple[int, int]:
        """(relative offset, position) of the last entry at or before the offset; (0, 0)
        when there is none."""
        i = self.floor(relative_offset)
        if i < 0:
            return 0, 0
        return self.keys[i], self.values[i]

    def consistent(self, log_size: int) -> bool:
        """Both columns strictly increasing and every position inside the log."""
        keys, values = self.keys, self.values
        if not keys:
            return True
        if keys[0] < 0 or values[0] < 0 or values[-1] >= log_size:
            return False
        return all(keys[i] < keys[i + 1] and values[i] < values[i + 1]
                   for i in range(len(keys) - 1))


class TimeIndex(_Index):
    """timestamp T -> relative offset X, meaning: every record at an offset below X has a
    timestamp of at most T. Timestamps strictly increase along the file. The last entry
    of a sealed segment is (largest timestamp in the segment, its next offset); only that
    entry may repeat the timestamp before it."""

    KEY = "q"
    VALUE = "i"

    def lower_bound(self, timestamp: int) -> int:
        """Relative offset to start a scan for the first record with ts >= timestamp."""
        i = bisect_right(self.keys, timestamp - 1) - 1  # last entry with T < timestamp
        return self.values[i] if i >= 0 else 0

    @property
    def last_timestamp(self) -> int:
        return self.keys[-1] if self.keys else -1

    @property
    def last_offset(self) -> int:
        return self.values[-1] if self.values else -1

    def consistent(self, max_relative_offset: int) -> bool:
        keys, values = self.keys, self.values
        if not keys:
            return True
        if values[0] < 0 or values[-1] > max_relative_offset:
            return False
        return all(keys[i] <= keys[i + 1] and values[i] <= values[i + 1]
                   for i in range(len(keys) - 1))
