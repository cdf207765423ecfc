"""The durable end: the log end offset at the last completed flush, and the boot it was
recorded in, kept in a small file next to the segments.

Why: a batch's baseOffset and partitionLeaderEpoch lie outside its CRC (as in Kafka). A
power loss may leave garbage in the part of a segment written after the last fsync, and a
bit flipped in those fields passes every check a recovery scan can make (offsets still
rise: a follower's log legitimately has gaps where its leader compacted). Such a batch
would make the replica's log look longer, or its last term higher, than it is, and with
that log it could win a Raft vote. After a restart of the machine, nothing past the last
completed flush is trusted: recovery cuts the log there. Nothing acknowledged is lost by
the cut: with flush.messages=1 a replica acknowledges only after its flush completes, and
the flush completes only after this file is durable; with a laxer policy, what the page
cache held was never promised to survive a power loss (durability is the majority's).

After a killed process on a machine that kept running, the page cache still holds every
byte written, exactly: the boot recorded in the file is the current one, and recovery
keeps the tail (as before).

Format: two slot files, ``durable-end.0`` and ``durable-end.1`` (so a write torn by the
power loss leaves the other slot whole, whatever the file system does to a file being
written), each one record: sequence (int64), durable end offset (int64), boot id (16
bytes), CRC-32C of those 32 bytes. A write goes to the slot the last valid one is not in;
the valid slot with the higher sequence wins. The previous slot holds an end at most the
current one's, and a flush that did not complete acknowledged nothing past it. Both
files are made together, before any record, so that the directory fsync that makes the
log's directory durable makes both of their entries durable.
"""

from __future__ import annotations

import functools
import os
import struct
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crc32c import crc32c

SLOT_NAMES = ("durable-end.0", "durable-end.1")
_BODY = struct.Struct(">qq16s")
_CRC = struct.Struct(">I")
UNKNOWN_BOOT = bytes(16)
_BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


@functools.cache
def _kernel_boot_id() -> bytes:
    try:
        with open(_BOOT_ID_PATH) as f:
            return uuid.UUID(f.read().strip()).bytes
    except (OSError, ValueError):
        return UNKNOWN_BOOT


def machine_boot_id(directory: Path) -> bytes:
    """The kernel's id of the current boot (Linux); UNKNOWN_BOOT elsewhere."""
    return _kernel_boot_id()


# The simulations replace this to give each simulated machine its own boots.
boot_id_source: Callable[[Path], bytes] = machine_boot_id


@dataclass(frozen=True)
class DurableEnd:
    sequence: int
    end_offset: int
    boot: bytes

    def same_boot(self, boot: bytes) -> bool:
        """Was this recorded in the boot ``boot``? Unknown boots never match: without a
        boot id a restart of the machine cannot be told from a killed process."""
        return boot != UNKNOWN_BOOT and boot == self.boot


class DurableEndFile:
    """Reads and writes a log directory's durable-end slots (see the module doc)."""

    def __init__(self, directory: Path) -> None:
        self.paths = tuple(directory / name for name in SLOT_NAMES)
        self.current: DurableEnd | None = None
        self._slot = 0
        self._synced = True  # is self.current durable?
        self._lock = threading.Lock()  # flush (fsync thread) and truncation (loop)
        self.generation = 0  # counts cuts (lower_to)

    def exists(self) -> bool:
        return any(p.exists() for p in self.paths)

    def create(self) -> None:
        """Makes both (empty) slot files; the caller makes the directory durable."""
        for path in self.paths:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o644))

    def load(self) -> DurableEnd | None:
        """The last durable end recorded, or None when no slot holds a whole record."""
        best: DurableEnd | None = None
        for slot, path in enumerate(self.paths):
            try:
                entry = _decode(path.read_bytes())
            except FileNotFoundError:
                continue
            if entry is not None and (best is None or entry.sequence > best.sequence):
                best, self._slot = entry, slot
        self.current = best
        return best

    def record(self, end_offset: int, boot: bytes, sync: bool = True) -> None:
        """Makes ``end_offset`` the durable end: written, then fsynced unless ``sync`` is
        False (a brand-new log, whose directory entries a later fsync makes durable)."""
        with self._lock:
            self._record(end_offset, boot, sync)

    def record_flushed(self, end_offset: int, boot: bytes, generation: int) -> None:
        """record() for a flush that began at ``generation``: skipped if the log was cut
        since (lower_to), whose lower end must stand until the next flush."""
        with self._lock:
            if generation == self.generation:
                self._record(end_offset, boot, True)

    def lower_to(self, offset: int, boot: bytes) -> None:
        """Before the log is cut at ``offset``: the appends that follow the cut must not
        be trusted as flushed (write-ahead)."""
        with self._lock:
            self.generation += 1
            if self.current is not None and self.current.end_offset > offset:
                self._record(offset, boot, True)

    def _record(self, end_offset: int, boot: bytes, sync: bool) -> None:
        previous = self.current
        if previous is not None and (previous.end_offset, previous.boot) == (end_offset, boot) \
                and (self._synced or not sync):
            return
        entry = DurableEnd((previous.sequence + 1) if previous else 1, end_offset, boot)
        slot = (1 - self._slot) if previous is not None else 0
        body = _BODY.pack(entry.sequence, entry.end_offset, entry.boot)
        fd = os.open(self.paths[slot], os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, body + _CRC.pack(crc32c(body)), 0)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self.current, self._slot, self._synced = entry, slot, sync


def _decode(raw: bytes) -> DurableEnd | None:
    need = _BODY.size + _CRC.size
    if len(raw) < need:
        return None
    body = raw[: _BODY.size]
    (crc,) = _CRC.unpack_from(raw, _BODY.size)
    if crc != crc32c(body):
        return None
    sequence, end_offset, boot = _BODY.unpack(body)
    if sequence < 1 or end_offset < 0:
        return None
    return DurableEnd(sequence, end_offset, boot)
