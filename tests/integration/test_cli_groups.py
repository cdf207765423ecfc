"""`odradek group`: resets by time (--to-datetime, --by-duration) and by --shift-by, and
deleting a topic's committed offsets; through the real command against a real broker."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from tests.brokers import BrokerProcess
from tests.cli import odradek

MINUTE_MS = 60_000


def ok(*args: str, stdin: str | None = None) -> str:
    r = odradek(*args, stdin=stdin)
    assert (r.returncode, r.stderr) == (0, ""), r
    return r.stdout


def reset(boot: list[str], *how: str) -> list[dict[str, Any]]:
    out = json.loads(ok("group", "reset", "g", "--topic", "t:0", *how, "--execute",
                        "--json", *boot))
    assert out["executed"] is True
    return [{k: c[k] for k in ("partition", "offset")} for c in out["changes"]]


def test_group_resets_by_time_and_shift_and_offset_deletion(broker: BrokerProcess) -> None:
    boot = ["--bootstrap", broker.address]
    ok("topic", "create", "t", "--partitions", "2", *boot)
    now = int(time.time() * 1000)
    ages = [120, 60, 10, 0]  # minutes before now, one record each on partition 0
    for age in ages:
        ok("produce", "t", "--format", "json", *boot, stdin=json.dumps(
            {"value": f"{age}m", "partition": 0, "timestamp": now - age * MINUTE_MS}) + "\n")
    ok("produce", "t", "--partition", "1", *boot, stdin="other\n")
    records = [json.loads(line) for line in ok(
        "consume", "t", "-p", "0", "-o", "beginning", "-e", "--format", "json",
        *boot).splitlines()]
    offsets = [r["offset"] for r in records]
    assert [r["value"] for r in records] == ["120m", "60m", "10m", "0m"]
    # Commit as a member, then leave: the reads start at the committed offsets.
    got = ok("consume", "t", "--group", "g", "--from-beginning", "--count", "5",
             "--timeout-ms", "20000", *boot)
    assert sorted(got.split()) == ["0m", "10m", "120m", "60m", "other"]

    assert reset(boot, "--by-duration", "PT90M") == [{"partition": 0, "offset": offsets[1]}]
    assert reset(boot, "--by-duration", "20m") == [{"partition": 0, "offset": offsets[2]}]
    at = datetime.fromtimestamp(records[0]["timestamp"] / 1000, UTC).isoformat()
    assert reset(boot, "--to-datetime", at) == [{"partition": 0, "offset": offsets[0]}]
    assert reset(boot, "--shift-by", "2") == [{"partition": 0, "offset": offsets[2]}]
    plan = ok("group", "reset", "g", "--topic", "t:0", "--shift-by", "-1", *boot)
    assert plan.splitlines() == [
        "TOPIC  PARTITION  PREVIOUS-OFFSET  NEW-OFFSET",
        f"t      0          {offsets[2]:<15}  {offsets[1]}",
        "(dry run: nothing changed; add --execute to apply)"]
    bad = odradek("group", "reset", "g", "--topic", "t", "--by-duration", "soon", *boot)
    assert bad.returncode == 2 and bad.stderr.endswith(
        "argument --by-duration: 'soon' is not a duration: ISO 8601 (PT30M, P1DT2H) or a "
        "number and a unit (1500ms, 30s, 15m, 2h, 1d)\n")

    committed = json.loads(ok("group", "describe", "g", "--json", *boot))["partitions"]
    end_1 = next(p["committed_offset"] for p in committed if p["partition"] == 1)
    deleted = ok("group", "delete-offsets", "g", "--topic", "t:1", *boot)
    assert deleted.splitlines() == ["TOPIC  PARTITION  DELETED-OFFSET", f"t      1          "
                                    f"{end_1}"]
    left = json.loads(ok("group", "describe", "g", "--json", *boot))
    assert [(p["partition"], p["committed_offset"]) for p in left["partitions"]] == [
        (0, offsets[2])]
    assert [o["offset"] for o in json.loads(ok("group", "delete-offsets", "g", "--topic", "t",
                                               "--json", *boot))] == [offsets[2]]
    assert ok("group", "delete-offsets", "g", "--topic", "t", *boot) == (
        "group g had no committed offsets for t\n")
    # The group itself is still there.
    assert json.loads(ok("group", "describe", "g", "--json", *boot))["group_id"] == "g"
