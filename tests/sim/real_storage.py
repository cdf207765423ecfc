"""The simulator's disks backed by the real storage code: every node keeps its Raft log in
a real PartitionLog (small segments, so they roll) in a temporary directory, seen by Raft
through the real PartitionRaftStorage.

Crash model (deterministic: every choice comes from the simulation's seeded generator).
While a RealDisk is active, ``os.fsync`` on a file under its root does not reach the disk:
it records the file's bytes as its durable content (keyed by inode, so renames carry it;
unlink and replace forget the inode, so a reused inode number starts with nothing
durable). Directory operations (create, rename, unlink) count as durable at once. At a
crash, each file goes back to its durable content, except that a seeded part of what was
written since (a prefix of the unsynced bytes: a torn write, possibly mid-batch) may
survive, and in segment ``.log`` files and the state journal a byte of the surviving
unsynced part may be flipped (the batch's or the record's CRC must catch it). A crash may
also strike in the middle of persisting a Ready: the storage code runs and the power
fails at its k-th fsync. Then the node's directory is reopened with PartitionLog.open
(recovery) and PartitionRaftStorage (which reloads raft-state.json and, on disks made
with ``journal``, the broker's state journal: there the hard state is appended to a
StateJournal and made durable by the storage's ``take_sync``, as on a broker).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from odradek.broker.replication.log_storage import PartitionRaftStorage
from odradek.broker.replication.state_journal import JOURNAL_FILE, StateJournal
from odradek.raft import PersistentLogStorage, Ready
from odradek.records import encode_batch
from odradek.storage import LogConfig, PartitionLog, durable_end

SEGMENT_BYTES = 1024  # the smallest segment.bytes allowed: segments roll often
INDEX_INTERVAL = 128
BASE_MS = 1_700_000_000_000


class SimPowerLoss(BaseException):
    """Raised from os.fsync when the simulated power fails in the middle of a write.
    A BaseException so that no ``except Exception`` in the storage code swallows it."""


_real_fsync = os.fsync
_real_unlink = os.unlink
_real_remove = os.remove
_real_replace = os.replace
_real_rename = os.rename
_ACTIVE: list[RealDisk] = []
_installed = False


def _owner(path: str) -> RealDisk | None:
    for disk in _ACTIVE:
        if path.startswith(disk.prefix):
            return disk
    return None


def _fsync(fd: Any) -> None:
    if _ACTIVE:
        fileno = fd if isinstance(fd, int) else fd.fileno()
        try:
            path = os.readlink(f"/proc/self/fd/{fileno}")
        except OSError:
            path = ""
        disk = _owner(path)
        if disk is not None:
            disk.on_fsync(fileno)
            return
    _real_fsync(fd)


def _forget(path: Any) -> None:
    if not _ACTIVE or not isinstance(path, str | os.PathLike):
        return
    p = os.fspath(path)
    disk = _owner(os.path.abspath(p))
    if disk is not None:
        try:
            disk.durable.pop(os.stat(p).st_ino, None)
        except OSError:
            pass


def _unlink(path: Any, *args: Any, **kwargs: Any) -> None:
    _forget(path)
    _real_unlink(path, *args, **kwargs)


def _remove(path: Any, *args: Any, **kwargs: Any) -> None:
    _forget(path)
    _real_remove(path, *args, **kwargs)


def _replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
    _forget(dst)
    _real_replace(src, dst, *args, **kwargs)


def _rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
    _forget(dst)
    _real_rename(src, dst, *args, **kwargs)


def _boot_id(directory: Path) -> bytes:
    """Each simulated machine boots anew at its power loss (RealDisk.reboot)."""
    path = str(Path(directory).resolve()) + os.sep
    disk = _owner(path)
    if disk is None:
        return durable_end.machine_boot_id(directory)
    boots = [(prefix, n) for prefix, n in disk.boots.items() if path.startswith(prefix)]
    prefix, n = max(boots, default=(disk.prefix, 0), key=lambda b: len(b[0]))
    return hashlib.blake2b(f"{prefix}#{n}".encode(), digest_size=16).digest()


def _install() -> None:
    """Routes fsync, unlink and replace through the hooks (once per process). With no
    RealDisk active the hooks only call the real functions."""
    global _installed
    if not _installed:
        os.fsync = _fsync
        os.unlink = _unlink
        os.remove = _remove
        os.replace = _replace
        os.rename = _rename
        durable_end.boot_id_source = _boot_id
        _installed = True


def _read(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _write(path: Path, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.truncate(0)
        f.write(data)


def _common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class RealDisk:
    """Per-node real storage for SimCluster (see the module doc)."""

    def __init__(self, parent: Path | None = None, journal: bool = False) -> None:
        _install()
        self.journal = journal
        self.journals: dict[int, StateJournal] = {}
        self.root = Path(tempfile.mkdtemp(prefix="odradek-sim-", dir=parent)).resolve()
        self.prefix = str(self.root) + os.sep
        self.config = LogConfig(segment_bytes=SEGMENT_BYTES, index_interval_bytes=INDEX_INTERVAL,
                                flush_messages=1)
        self.durable: dict[int, bytes] = {}
        self.storages: dict[int, PartitionRaftStorage] = {}
        self.voters: dict[int, list[int]] = {}
        self.fsync_budget: int | None = None
        self.now_ms: Callable[[], int] = lambda: BASE_MS
        self.stats = {"torn": 0, "flipped": 0, "lost_bytes": 0, "mid_write_crashes": 0}
        self.boots: dict[str, int] = {}  # directory prefix -> power losses so far
        _ACTIVE.append(self)

    def reboot(self, directory: Path) -> None:
        """The machine whose data is under ``directory`` lost power: a new boot id."""
        prefix = str(directory.resolve()) + os.sep
        self.boots[prefix] = self.boots.get(prefix, 0) + 1

    # ------------------------------------------------------------------ hooks
    def on_fsync(self, fd: int) -> None:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            return  # directory operations are durable at once in this model
        if self.fsync_budget is not None:
            if self.fsync_budget == 0:
                raise SimPowerLoss()
            self.fsync_budget -= 1
        # the descriptor may be write-only: read the file through a fresh one
        with open(f"/proc/self/fd/{fd}", "rb") as f:
            self.durable[st.st_ino] = f.read()

    # -------------------------------------------------------------- storages
    def node_dir(self, node_id: int) -> Path:
        return self.root / f"n{node_id}"

    def open(self, node_id: int, voters: list[int]) -> PersistentLogStorage:
        self.voters[node_id] = list(voters)
        log = PartitionLog.open(self.node_dir(node_id), self.config, clock=self.now_ms)
        if not self.journal:
            st = PartitionRaftStorage(log, voters, clock=self.now_ms)
        else:
            journal = self.journals[node_id] = StateJournal(self.node_dir(node_id))
            st = PartitionRaftStorage(log, voters, clock=self.now_ms, sync_behind=True,
                                      journal=journal, journal_key=f"n{node_id}")
        self.storages[node_id] = st
        return st

    def proposal(self, seq: int, count: int) -> bytes:
        """A client batch of ``count`` records (RecordBatch v2, offsets assigned later)."""
        ts = self.now_ms()
        return encode_batch([(ts, b"k%d" % (seq % 7), b"w%d.%d" % (seq, i))
                             for i in range(count)])

    def crash(self, node_id: int, pending: Ready | None,
              rng: random.Random) -> PersistentLogStorage:
        """Power loss on the node: maybe in the middle of persisting ``pending``; unsynced
        data is lost, torn or corrupted; the directory is reopened (recovery)."""
        st = self.storages[node_id]
        if pending is not None and rng.random() < 0.8:
            self.stats["mid_write_crashes"] += 1
            self.fsync_budget = rng.randint(0, 4)
            try:
                if pending.snapshot_to_apply is not None:
                    st.apply_snapshot(pending.snapshot_to_apply)
                if pending.entries_to_persist:
                    st.append(pending.entries_to_persist)
                if pending.hard_state is not None:
                    st.set_hard_state(pending.hard_state)
                sync = st.take_sync()
                if sync is not None:
                    sync()
            except SimPowerLoss:
                pass
            finally:
                self.fsync_budget = None
        for seg in st.log.segments:
            seg.close()
        if node_id in self.journals:
            self.journals.pop(node_id).close()
        d = self.node_dir(node_id)
        for path in sorted(d.iterdir()):
            if path.is_file():
                self._lose_unsynced(path, rng)
        self.reboot(d)
        return self.open(node_id, self.voters[node_id])

    def lose_unsynced_under(self, directory: Path, rng: random.Random) -> None:
        """Power loss for every file below ``directory`` (closed by the caller first):
        the whole-broker simulation's crash (tests/sim_broker)."""
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                self._lose_unsynced(path, rng)
        self.reboot(directory)

    def _lose_unsynced(self, path: Path, rng: random.Random) -> None:
        ino = path.stat().st_ino
        durable = self.durable.get(ino, b"")
        current = _read(path)
        if current == durable:
            return
        common = _common_prefix(durable, current)
        if common < len(durable) and rng.random() < 0.5:
            result = durable  # the unsynced overwrite (or truncation) never happened
        else:
            # current[:common] is on disk; of the rest, a prefix made it (maybe none)
            extra = len(current) - common
            r = rng.random()
            keep = 0 if r < 0.4 else extra if r < 0.6 else rng.randint(0, extra)
            result = current[: common + keep]
            if 0 < keep < extra:
                self.stats["torn"] += 1
            if keep and (path.suffix == ".log" or path.name == JOURNAL_FILE) \
                    and rng.random() < 0.5:
                pos = common + rng.randrange(keep)
                flipped = bytearray(result)
                flipped[pos] ^= 1 << rng.randrange(8)
                result = bytes(flipped)
                self.stats["flipped"] += 1
        self.stats["lost_bytes"] += max(0, len(current) - len(result))
        _write(path, result)
        self.durable[ino] = result  # after the crash, what is on disk is durable

    def close(self) -> None:
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        for st in self.storages.values():
            for seg in st.log.segments:
                seg.close()
        for journal in self.journals.values():
            journal.close()
        shutil.rmtree(self.root, ignore_errors=True)
