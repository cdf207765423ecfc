"""The metadata log's Raft storage: the partition-log storage plus snapshots.

A snapshot is the encoded metadata image at an applied offset, kept in `snapshot.json`
next to the log. After one is taken, the log's whole segments below it are deleted; a
voter that falls behind the log start gets the snapshot instead of the entries."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence

from odradek.broker.replication.log_storage import PartitionRaftStorage, log_dir
from odradek.raft import ConfigState, Entry, Snapshot, SnapshotMeta
from odradek.storage import PartitionLog
from odradek.storage.cleaner import fsync_dir

SNAPSHOT_FILE = "snapshot.json"


class MetadataRaftStorage(PartitionRaftStorage):
    def __init__(self, log: PartitionLog, initial_voters: Sequence[int]) -> None:
        self.snapshot_path = log_dir(log) / SNAPSHOT_FILE
        self._snap: Snapshot | None = self._read_snapshot()
        super().__init__(log, initial_voters, producer_state=False)

    def _read_snapshot(self) -> Snapshot | None:
        try:
            raw = json.loads(self.snapshot_path.read_text())
        except FileNotFoundError:
            return None
        meta = SnapshotMeta(raw["index"], raw["term"], ConfigState(frozenset(raw["voters"])))
        return Snapshot(meta, base64.b64decode(raw["data"]))

    def _write_snapshot(self, snapshot: Snapshot) -> None:
        meta = snapshot.meta
        text = json.dumps({"index": meta.index, "term": meta.term,
                           "voters": sorted(meta.config.voters),
                           "data": base64.b64encode(snapshot.data).decode()})
        tmp = self.snapshot_path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.snapshot_path)
        fsync_dir(self.snapshot_path.parent)
        self._snap = snapshot

    @property
    def snapshot_index(self) -> int:
        return self._snap.meta.index if self._snap is not None else -1

    def snapshot_meta(self) -> SnapshotMeta:
        if self._snap is not None and self._snap.meta.index >= self.log.log_start_offset - 1:
            return self._snap.meta
        return super().snapshot_meta()

    def snapshot(self) -> Snapshot:
        if self._snap is not None and self._snap.meta.index >= self.log.log_start_offset - 1:
            return self._snap
        return super().snapshot()

    def first_index(self) -> int:
        return max(self.log.log_start_offset, self.snapshot_index + 1)

    def term(self, offset: int) -> int | None:
        first = self.first_index()
        if offset == first - 1:
            return self.snapshot_meta().term
        if offset < first:
            return None
        return super().term(offset)

    def entry_at(self, offset: int) -> Entry | None:
        return None if offset < self.first_index() else super().entry_at(offset)

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        return [] if lo < self.first_index() else super().entries(lo, hi, max_bytes)

    def config_entries(self) -> list[Entry]:
        first = self.first_index()
        return [e for e in super().config_entries() if e.index >= first]

    def _base_voters(self) -> list[int]:
        if self._snap is not None:
            later = [v for o, v in self.state.configs if o <= self._snap.meta.index]
            return later[-1] if later else sorted(self._snap.meta.config.voters)
        return super()._base_voters()

    def compact(self, index: int, data: bytes) -> None:
        term = self.term(index) or 0
        voters = self._config_at(index)
        self._write_snapshot(Snapshot(SnapshotMeta(index, term, ConfigState(frozenset(voters))),
                                      data))
        self.log.delete_segments_below(index + 1)

    def _config_at(self, index: int) -> list[int]:
        before = [v for o, v in self.state.configs if o <= index]
        if before:
            return before[-1]
        if self._snap is not None:
            return sorted(self._snap.meta.config.voters)
        return self.state.voters

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        self._write_snapshot(snapshot)
        super().apply_snapshot(snapshot)
