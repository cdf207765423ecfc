"""bench/compare_report.py turns a figures dict into the markdown table, and
bench/nats_bench.c (the native JetStream client of `make bench-compare`) compiles."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench_module(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return bench_module("compare_report")


def _figures() -> dict[str, Any]:
    lat = {"p50": 2.0, "p99": 8.0, "p99.9": 12.5, "max": 20.0}
    return {
        "dd_mb_per_s": 400.0,
        "consume_bytes": 1_000_000_000,
        "rate_mb": 5.0,
        "figures": {
            "odradek": {
                "python": {"produce_100b": {"records_per_s": 30_000.0, "mb_per_s": 3.0},
                           "produce_1k": {"records_per_s": 10_000.0, "mb_per_s": 10.24},
                           "latency_1k": {"latency_ms": lat},
                           "consume_1k": {"records_per_s": 50_000.0, "mb_per_s": 51.2},
                           "failover": {"median_s": 0.5, "max_s": 0.9}},
                "native": {"produce_1k": {"records_per_s": 40_000.0, "mb_per_s": 40.96}},
            },
            "jetstream": {
                "python": {"produce_100b": {"records_per_s": 10_000.0, "mb_per_s": 1.0},
                           "produce_1k": {"records_per_s": 5_000.0, "mb_per_s": 5.12},
                           "latency_1k": {"latency_ms": {**lat, "p50": 4.0}},
                           "consume_1k": {"records_per_s": 25_000.0, "mb_per_s": 25.6},
                           "failover": {"median_s": 5.0, "max_s": 6.0}},
                "native": {},
            },
        },
    }


def _row(md: str, label: str) -> list[str]:
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r} in\n{md}")


def test_table_has_every_figure_and_ratio(report: ModuleType) -> None:
    md = report.table(_figures())
    assert _row(md, "produce 100 B, records/s")[:3] == ["30,000", "10,000", "3.00"]
    assert _row(md, "produce 1 KB, MB/s") == ["10.2", "5.1", "2.00", "41.0", "-", "-"]
    assert _row(md, "1 KB at the fixed rate: ack latency p50, ms")[:3] == ["2.00", "4.00",
                                                                           "0.50"]
    assert _row(md, "1 KB at the fixed rate: ack latency p99.9, ms")[:3] == ["12.50", "12.50",
                                                                             "1.00"]
    assert _row(md, "consume 1 GB stored, MB/s")[:3] == ["51.2", "25.6", "2.00"]
    assert _row(md, "failover after kill -9 of the leader, median ms")[:3] == ["500", "5,000",
                                                                               "0.10"]
    assert _row(md, "disk: dd sequential write with fdatasync, MB/s")[0] == "400.0"
    header = md.splitlines()[0]
    assert header.count("|") == 8


def test_missing_figures_show_a_dash(report: ModuleType) -> None:
    md = report.table({"figures": {}})
    assert _row(md, "produce 1 KB, records/s") == ["-"] * 6
    assert "dd" not in md


def test_write_puts_table_and_json_beside_each_other(report: ModuleType,
                                                      tmp_path: Path) -> None:
    results = {**_figures(), "date": "2026-12-02", "command": "make bench-compare",
               "machine": {"cores": 2}, "notes": ["shared machine"], "skipped": ["x: y"]}
    written = report.write(results, tmp_path / "2026-12-02-test", with_plots=False)
    assert [p.name for p in written] == ["2026-12-02-test.md", "2026-12-02-test.json"]
    md = written[0].read_text()
    assert "- cores: 2" in md and "`make bench-compare`" in md and "- skipped: x: y" in md
    assert report.table(results) in md


def test_nats_bench_compiles(tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None or not Path("/usr/include/nats/nats.h").exists():
        pytest.skip("gcc or libnats-dev (nats/nats.h) is not installed")
    exe = tmp_path / "nats_bench"
    r = subprocess.run(bench_module("compare").gcc_command(gcc, exe, "-Werror"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    usage = subprocess.run([str(exe)], capture_output=True, text=True, timeout=10)
    assert usage.returncode == 1 and "usage: nats_bench produce" in usage.stderr
