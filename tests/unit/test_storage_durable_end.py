"""The durable end (storage/durable_end.py): after a restart of the machine, nothing
written past the last completed flush is trusted; after a killed process it is kept."""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from odradek.records.batch import set_offset_and_epoch
from odradek.storage import LogConfig, PartitionLog, durable_end
from odradek.storage.durable_end import SLOT_NAMES, DurableEndFile
from tests.unit.storage_util import batch, read_all

CONFIG = LogConfig(segment_bytes=4096, index_interval_bytes=100)


class Boots:
    """Stands in for the kernel's boot id: reboot() is a power loss of the machine."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, directory: Path) -> bytes:
        return self.n.to_bytes(16, "big") if self.n else bytes(15) + b"\x80"

    def reboot(self) -> None:
        self.n += 1


@pytest.fixture
def boots(monkeypatch: pytest.MonkeyPatch) -> Iterator[Boots]:
    b = Boots()
    monkeypatch.setattr(durable_end, "boot_id_source", b)
    yield b


def crash(log: PartitionLog) -> None:
    """Drops the log as kill -9 or a power loss would: no flush, no clean-stop marker."""
    log._close_files()


def values(log: PartitionLog) -> list[bytes | None]:
    return [r.value for r in read_all(log)]


def written(d: Path, flushed: int, unflushed: int) -> PartitionLog:
    log = PartitionLog.open(d, CONFIG)
    for i in range(flushed):
        log.append(batch(b"f%d" % i))
    log.flush()
    for i in range(unflushed):
        log.append(batch(b"u%d" % i))
    return log


def flip_last_base_offset(log: PartitionLog, to: int) -> None:
    """What the simulation found (seed 120): the power loss left the last, unsynced batch
    whole but for its baseOffset, which lies outside the batch CRC."""
    path = log.segments[-1].log_path
    data = bytearray(path.read_bytes())
    pos = 0
    last = 0
    while pos < len(data):
        last = pos
        (length,) = struct.unpack_from(">i", data, pos + 8)
        pos += 12 + length
    (epoch,) = struct.unpack_from(">i", data, last + 12)
    set_offset_and_epoch(data, last, to, epoch)
    path.write_bytes(bytes(data))


def test_power_loss_cuts_what_the_last_flush_did_not_cover(
        tmp_path: Path, boots: Boots, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "p"
    log = written(d, 3, 2)
    flip_last_base_offset(log, (1 << 30) + 4)
    crash(log)
    boots.reboot()
    with caplog.at_level(logging.WARNING, logger="odradek.storage"):
        log = PartitionLog.open(d, CONFIG)
    assert log.log_end_offset == 3
    assert values(log) == [b"f0", b"f1", b"f2"]
    assert any("machine restarted" in r.getMessage() for r in caplog.records)
    # The log goes on from the durable end.
    assert log.append(batch(b"next")).base_offset == 3


def test_without_the_cut_the_flipped_offset_would_stand(tmp_path: Path, boots: Boots) -> None:
    """The same damage after a killed process (same boot) is kept: it shows what the cut
    is for (this is the scan's behaviour, which the page cache makes safe there)."""
    d = tmp_path / "p"
    log = written(d, 3, 2)
    flip_last_base_offset(log, (1 << 30) + 4)
    crash(log)
    log = PartitionLog.open(d, CONFIG)
    assert log.log_end_offset == (1 << 30) + 5


def test_killed_process_keeps_the_unflushed_tail(tmp_path: Path, boots: Boots) -> None:
    d = tmp_path / "p"
    crash(written(d, 3, 2))
    log = PartitionLog.open(d, CONFIG)
    assert values(log) == [b"f0", b"f1", b"f2", b"u0", b"u1"]
    # ...and that tail is still not trusted after a later power loss.
    crash(log)
    boots.reboot()
    assert values(PartitionLog.open(d, CONFIG)) == [b"f0", b"f1", b"f2"]


def test_clean_stop_trusts_everything_after_a_reboot(tmp_path: Path, boots: Boots) -> None:
    d = tmp_path / "p"
    written(d, 3, 2).close()
    boots.reboot()
    log = PartitionLog.open(d, CONFIG)
    assert values(log) == [b"f0", b"f1", b"f2", b"u0", b"u1"]
    # The clean start recorded the end: a power loss now keeps what the stop flushed.
    log.append(batch(b"late"))
    crash(log)
    boots.reboot()
    assert values(PartitionLog.open(d, CONFIG)) == [b"f0", b"f1", b"f2", b"u0", b"u1"]


def test_truncation_lowers_the_durable_end_before_new_appends(tmp_path: Path,
                                                              boots: Boots) -> None:
    d = tmp_path / "p"
    log = written(d, 5, 0)
    log.truncate_to(2)  # a Raft follower's conflicting tail
    log.append(batch(b"new2"))
    log.append(batch(b"new3"))
    crash(log)
    boots.reboot()
    log = PartitionLog.open(d, CONFIG)
    assert values(log) == [b"f0", b"f1"]


def test_a_brand_new_log_lost_to_power_loss_keeps_nothing_unflushed(
        tmp_path: Path, boots: Boots) -> None:
    d = tmp_path / "p"
    log = written(d, 0, 3)
    crash(log)
    boots.reboot()
    log = PartitionLog.open(d, CONFIG)
    assert log.log_end_offset == 0
    # A torn first write of the file (neither slot whole) means no flush completed.
    crash(written(d, 0, 2))
    for name in SLOT_NAMES:
        (d / name).write_bytes(b"\x07" * 20)  # torn
    boots.reboot()
    assert PartitionLog.open(d, CONFIG).log_end_offset == 0


def test_a_torn_record_falls_back_to_the_previous_slot(tmp_path: Path, boots: Boots) -> None:
    d = tmp_path / "p"
    log = written(d, 2, 0)
    log.append(batch(b"f2"))
    log.flush()  # the durable end is now 3, in the other slot than 2
    f = DurableEndFile(d)
    entry = f.load()
    assert entry is not None and entry.end_offset == 3
    crash(log)
    [newest] = [d / n for n in SLOT_NAMES
                if (d / n).read_bytes()[:8] == entry.sequence.to_bytes(8, "big")]
    newest.write_bytes(newest.read_bytes()[:13])  # torn
    previous = DurableEndFile(d).load()
    assert previous is not None and previous.end_offset == 2
    boots.reboot()
    assert values(PartitionLog.open(d, CONFIG)) == [b"f0", b"f1"]


def test_a_log_from_before_the_file_is_made_durable_and_recorded(tmp_path: Path,
                                                                 boots: Boots) -> None:
    d = tmp_path / "p"
    crash(written(d, 2, 1))
    for name in SLOT_NAMES:
        os.unlink(d / name)  # written by a version without them
    log = PartitionLog.open(d, CONFIG)
    assert values(log) == [b"f0", b"f1", b"u0"]
    crash(log)
    boots.reboot()
    assert values(PartitionLog.open(d, CONFIG)) == [b"f0", b"f1", b"u0"]


def test_unknown_boot_ids_never_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a boot id a restart of the machine cannot be told from a killed process:
    the tail past the last flush is cut either way."""
    monkeypatch.setattr(durable_end, "boot_id_source", lambda d: durable_end.UNKNOWN_BOOT)
    d = tmp_path / "p"
    crash(written(d, 2, 2))
    assert values(PartitionLog.open(d, CONFIG)) == [b"f0", b"f1"]
