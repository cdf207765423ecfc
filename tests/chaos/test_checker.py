"""The chaos checker on made-up histories: each rule fires on what it names, and a clean
history passes (no root needed)."""

from __future__ import annotations

from tests.chaos.checker import History, check_metadata

TP0 = ("chaos", 0)
Logs = dict[tuple[str, int], dict[int, tuple[list[tuple[int, bytes]], str | None]]]


def logs(*replicas: list[tuple[int, bytes]]) -> Logs:
    return {TP0: {i: (records, None) for i, records in enumerate(replicas)}}


LOG = [(0, b"p0:0"), (1, b"p0:1"), (3, b"p0:2")]  # offset 2: a control batch


def kinds(history: History, final: Logs) -> list[str]:
    return sorted({v.kind for v in history.check(final)})


def test_a_history_that_fits_the_log_passes() -> None:
    h = History()
    for offset, value in LOG:
        h.ack(value, TP0, offset)
    h.read("tail-0", TP0, LOG, group=False)
    h.read("m1-g1", TP0, LOG[:2], group=True)
    h.read("m2-g2", TP0, LOG[1:], group=True)  # re-reads after a rebalance are fine
    assert kinds(h, logs(LOG, LOG)) == []


def test_lost_duplicated_and_reordered_writes() -> None:
    h = History()
    h.ack(b"p0:9", TP0, 1)
    assert kinds(h, logs(LOG)) == ["ACKED_WRITE_LOST"]
    assert kinds(History(), logs([(0, b"p0:0"), (1, b"p0:0")])) == ["DUPLICATE"]
    assert kinds(History(), logs([(0, b"p0:1"), (1, b"p0:0")])) == ["REORDERED"]


def test_replicas_that_differ_or_hold_a_bad_batch() -> None:
    assert kinds(History(), logs(LOG, LOG[:2])) == ["REPLICAS_DIFFER"]
    bad: Logs = {TP0: {0: (LOG, None), 1: (LOG, "0.log: CRC mismatch")}}
    assert kinds(History(), bad) == ["REPLICAS_DIFFER"]


def test_a_fenced_instance_acknowledged_after_its_successor_wrote() -> None:
    h = History()
    h.ack(b"named-2:5", TP0, 1, named=("named", 2))
    h.ack(b"named-1:6", TP0, 3, named=("named", 1))
    final = logs([(1, b"named-2:5"), (3, b"named-1:6")])
    assert "FENCED_PRODUCER_ACKED" in kinds(h, final)


def test_polls_that_go_back_skip_or_read_what_the_log_lacks() -> None:
    h = History()
    h.read("tail-0", TP0, [(1, b"p0:1"), (0, b"p0:0")], group=False)
    assert kinds(h, logs(LOG)) == ["POLL_WENT_BACKWARDS"]
    h = History()
    h.read("tail-0", TP0, [(0, b"p0:0"), (3, b"p0:2")], group=False)
    assert kinds(h, logs(LOG)) == ["POLL_SKIPPED"]
    h = History()
    h.read("tail-0", TP0, [(0, b"p0:7")], group=False)
    assert kinds(h, logs(LOG)) == ["READ_NOT_IN_LOG"]


def test_a_record_no_group_member_read() -> None:
    h = History()
    h.read("m1-g1", TP0, [(0, b"p0:0")], group=True)
    h.read("m2-g2", TP0, [(3, b"p0:2")], group=True)
    assert kinds(h, logs(LOG)) == ["GROUP_SKIPPED"]


def test_the_metadata_check_finds_corrupt_and_differing_voters() -> None:
    log = [(1, b"a"), (2, b"b"), (3, b"c")]
    assert check_metadata({0: (log, None), 1: (log[:2], None), 2: (log[1:], None)}) == []
    found = check_metadata({0: (log, None), 1: ([(1, b"a"), (2, b"x")], None),
                            2: (log[:1], "00000000000000000000.log: CRC")})
    assert sorted(v.kind for v in found) == ["CORRUPT_METADATA_LOG", "METADATA_LOGS_DIFFER"]
