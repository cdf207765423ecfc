"""A data directory belongs to one broker: an exclusive lock while the broker runs, and an
identity file (as Kafka's meta.properties) that names the broker and the cluster it was
made for. Two processes writing one directory corrupt it (a commit index past the log
end, reads that come back empty); a directory of another broker id holds another
broker's replicas."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from odradek.storage.cleaner import fsync_dir

FORMAT_VERSION = 1
IDENTITY_FILE = "meta.json"
LOCK_FILE = ".lock"


class DataDirError(Exception):
    """The directory cannot be used by this broker; the message says why."""


class DataDirLock:
    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def claim(directory: Path, broker_id: int, cluster_id: str, voters: list[int]) -> DataDirLock:
    """Locks the directory for this process and checks (or writes) its identity."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise DataDirError(
            f"data directory {directory} is in use by another broker process{holder}; "
            "give each broker its own --data-dir") from None
    lock = DataDirLock(directory, fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _check_identity(directory, broker_id, cluster_id, sorted(voters))
    except BaseException:
        lock.release()
        raise
    return lock


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def _check_identity(directory: Path, broker_id: int, cluster_id: str,
                    voters: list[int]) -> None:
    path = directory / IDENTITY_FILE
    if not path.exists():
        _write_identity(path, {"format_version": FORMAT_VERSION, "broker_id": broker_id,
                               "cluster_id": cluster_id, "voters": voters})
        return
    try:
        found = json.loads(path.read_text())
        version, found_id = found["format_version"], found["broker_id"]
        found_voters = found["voters"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataDirError(f"{path} is unreadable ({exc}); it names the broker this "
                           "directory belongs to: restore it or use another --data-dir") from None
    if version != FORMAT_VERSION:
        raise DataDirError(f"{path}: data format version {version!r}, this broker reads "
                           f"version {FORMAT_VERSION}")
    if found_id != broker_id:
        raise DataDirError(
            f"data directory {directory} belongs to broker {found_id}, not broker "
            f"{broker_id}: its replicas are that broker's; give broker {broker_id} its own "
            "--data-dir")
    # The voter ids, not their addresses: a cluster may move, a directory of a cluster
    # with other voters holds another cluster's metadata.
    if found_voters != voters:
        raise DataDirError(
            f"data directory {directory} was made for a cluster whose metadata voters are "
            f"{found_voters}, not {voters} (cluster {found.get('cluster_id')}); use "
            "another --data-dir for another cluster")


def _write_identity(path: Path, identity: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(identity, f)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_durably(path: Path, text: str) -> None:
    """A torn or empty topic-id after a power loss would read as another topic's and get
    the replica's directory (its log, term and vote) deleted: write it atomically."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
