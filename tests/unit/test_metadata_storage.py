"""Snapshots of the metadata log: compaction drops old segments, a snapshot survives a
restart, and a fresh voter can be given one."""

from __future__ import annotations

from pathlib import Path

from odradek.broker.replication.meta_storage import MetadataRaftStorage
from odradek.raft import Entry
from odradek.records import encode_batch
from odradek.storage import LogConfig, PartitionLog


def fill(storage: MetadataRaftStorage, count: int, term: int = 1) -> None:
    for i in range(count):
        index = storage.last_index() + 1
        storage.append([Entry(index, 1, term, encode_batch([(i, None, b"c" * 300)]))])


def open_storage(path: Path) -> MetadataRaftStorage:
    return MetadataRaftStorage(PartitionLog.open(path, LogConfig(segment_bytes=2048)), [0, 1, 2])


def test_compaction_and_restart(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "meta")
    fill(storage, 40)
    segments = storage.log.segment_count
    assert segments > 3
    storage.compact(29, b"image-at-29")
    assert storage.log.segment_count < segments
    assert storage.first_index() == 30
    assert storage.term(29) == 1 and storage.term(10) is None
    assert storage.entries(10, 40, 1 << 20) == []
    got = storage.entries(30, 40, 1 << 20)  # at most one segment per read
    assert [e.index for e in got] == list(range(30, 30 + len(got))) and got
    snap = storage.snapshot()
    assert (snap.meta.index, snap.meta.term, snap.data) == (29, 1, b"image-at-29")
    assert snap.meta.config.voters == frozenset({0, 1, 2})
    storage.log.close()

    again = open_storage(tmp_path / "meta")
    assert again.first_index() == 30 and again.last_index() == 39
    assert again.snapshot().data == b"image-at-29"
    fill(again, 5, term=2)
    assert again.term(44) == 2 and again.term(30) == 1


def test_install_snapshot_on_a_fresh_voter(tmp_path: Path) -> None:
    leader = open_storage(tmp_path / "leader")
    fill(leader, 40)
    leader.compact(35, b"image-at-35")
    fresh = open_storage(tmp_path / "fresh")
    fresh.apply_snapshot(leader.snapshot())
    assert fresh.first_index() == 36 and fresh.last_index() == 35
    assert fresh.term(35) == 1
    while fresh.last_index() < 39:
        fresh.append(leader.entries(fresh.last_index() + 1, 40, 1 << 20))
    fresh.log.close()
    reopened = open_storage(tmp_path / "fresh")
    assert reopened.snapshot().data == b"image-at-35" and reopened.last_index() == 39
