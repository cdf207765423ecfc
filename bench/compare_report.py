"""The results of `make bench-compare` as a markdown table, JSON and PNG plots.

The figures dict has this shape (any figure may be missing: its cell shows "-"):

    {"dd_mb_per_s": 412.0,
     "figures": {"odradek" | "jetstream": {"python" | "native": {
         "produce_100b" | "produce_1k": {"records_per_s", "mb_per_s", ...},
         "latency_1k": {"rate", "latency_ms": {"p50", "p99", "p99.9", "max"}},
         "consume_1k": {"records", "records_per_s", "mb_per_s", ...},
         "failover": {"median_s", "min_s", "max_s", "tries"}}}}}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

SYSTEMS = (("odradek", "Odradek"), ("jetstream", "JetStream"))
CLIENTS = (("python", "Python"), ("native", "native C"))
Getter = Callable[[dict[str, Any]], float | None]


def _get(*keys: str) -> Getter:
    def get(client: dict[str, Any]) -> float | None:
        value: Any = client
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return float(value)

    return get


def _ms(*keys: str) -> Getter:
    inner = _get(*keys)

    def get(client: dict[str, Any]) -> float | None:
        value = inner(client)
        return None if value is None else value * 1000

    return get


def rows(consume_label: str) -> list[tuple[str, Getter, int]]:
    """(row label, how to read the figure from one client's dict, decimals)."""
    return [
        ("produce 100 B, records/s", _get("produce_100b", "records_per_s"), 0),
        ("produce 100 B, MB/s", _get("produce_100b", "mb_per_s"), 1),
        ("produce 1 KB, records/s", _get("produce_1k", "records_per_s"), 0),
        ("produce 1 KB, MB/s", _get("produce_1k", "mb_per_s"), 1),
        ("1 KB at the fixed rate: achieved MB/s", _get("latency_1k", "mb_per_s"), 2),
        ("1 KB at the fixed rate: ack latency p50, ms", _get("latency_1k", "latency_ms", "p50"),
         2),
        ("1 KB at the fixed rate: ack latency p99, ms", _get("latency_1k", "latency_ms", "p99"),
         2),
        ("1 KB at the fixed rate: ack latency p99.9, ms",
         _get("latency_1k", "latency_ms", "p99.9"), 2),
        (f"consume {consume_label} stored, records/s", _get("consume_1k", "records_per_s"), 0),
        (f"consume {consume_label} stored, MB/s", _get("consume_1k", "mb_per_s"), 1),
        ("failover after kill -9 of the leader, median ms", _ms("failover", "median_s"), 0),
        ("failover, max ms", _ms("failover", "max_s"), 0),
    ]


def _cell(value: float | None, decimals: int) -> str:
    return "-" if value is None else f"{value:,.{decimals}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def human_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n:g} B"


def table(results: dict[str, Any]) -> str:
    """Every figure and its Odradek / JetStream ratio, per client kind."""
    figures = results.get("figures", {})
    label = human_bytes(float(results.get("consume_bytes", 0)))
    head = ["what"]
    for _, client_name in CLIENTS:
        head += [f"Odradek, {client_name}", f"JetStream, {client_name}",
                 f"ratio O/J, {client_name}"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for name, get, decimals in rows(label):
        cells = [name]
        for client, _ in CLIENTS:
            a = get(figures.get("odradek", {}).get(client, {}))
            b = get(figures.get("jetstream", {}).get(client, {}))
            cells += [_cell(a, decimals), _cell(b, decimals), _ratio(a, b)]
        out.append("| " + " | ".join(cells) + " |")
    dd = results.get("dd_mb_per_s")
    if dd is not None:
        out.append(f"| disk: dd sequential write with fdatasync, MB/s | {dd:,.1f} |"
                   + " |" * (len(head) - 2))
    return "\n".join(out)


def machine_lines(machine: dict[str, Any]) -> list[str]:
    return [f"- {key}: {value}" for key, value in machine.items()]


def markdown(results: dict[str, Any], plots: list[str]) -> str:
    rate = results.get("rate_mb")
    lines = [
        f"# bench-compare {results.get('date', '')}: Odradek vs NATS JetStream",
        "",
        f"Command: `{results.get('command', '')}`"
        + (" (quick mode: small counts, figures are indicative only)"
           if results.get("quick") else ""),
        "",
        "Machine:",
        *machine_lines(results.get("machine", {})),
        "",
        "Odradek: 3 brokers on loopback, topics with 6 partitions, RF=3, acks=quorum "
        "(Python: `odradek bench`; native: confluent-kafka over the Kafka listener, "
        "acks=all, idempotent). JetStream: 3 clustered nats-server, one R3 file stream "
        "(Python: nats-py; native: libnats through bench/nats_bench.c). MB = 10^6 bytes.",
        f"Latency is produce-ack latency (send call to ack) of 1 KB records at a fixed "
        f"{rate} MB/s, not end-to-end to a consumer. Ratios are Odradek / JetStream: above "
        "1 means Odradek is faster for throughput, slower for latency and failover.",
        "Failover is measured with the Python clients only (they are the ones in the "
        "Python columns).",
        "",
        table(results),
        "",
    ]
    for note in results.get("notes", []):
        lines.append(f"- {note}")
    for skipped in results.get("skipped", []):
        lines.append(f"- skipped: {skipped}")
    if plots:
        lines.append("")
        lines += [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    return "\n".join(lines) + "\n"


def _series(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    figures = results.get("figures", {})
    return [(f"{system_name}, {client_name}", figures.get(system, {}).get(client, {}))
            for system, system_name in SYSTEMS for client, client_name in CLIENTS]


def _bar_chart(series: list[tuple[str, dict[str, Any]]], groups: list[tuple[str, Getter]],
               path: Path, title: str, ylabel: str, log_scale: bool = False) -> str:
    """Grouped bars: one group per (tick label, getter), one bar per series in each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for k, (name, client) in enumerate(series):
        values = [get(client) or 0.0 for _, get in groups]
        ax.bar([i + k * width for i in range(len(groups))], values, width, label=name)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(groups))],
                  [label for label, _ in groups])
    if log_scale:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def plot(results: dict[str, Any], stem: Path) -> list[str]:
    """Two PNGs beside the results: throughput by record size, and latency percentiles."""
    series = _series(results)
    throughput = _bar_chart(
        series, [("100 B records", _get("produce_100b", "mb_per_s")),
                 ("1 KB records", _get("produce_1k", "mb_per_s"))],
        stem.with_name(stem.name + "-throughput.png"),
        "Produce throughput, 3 nodes, replication 3", "produce MB/s (quorum-acknowledged)")
    latency = _bar_chart(
        series, [(q, _get("latency_1k", "latency_ms", q)) for q in ("p50", "p99", "p99.9")],
        stem.with_name(stem.name + "-latency.png"),
        f"1 KB records at {results.get('rate_mb')} MB/s",
        "produce-ack latency, ms (log scale)", log_scale=True)
    return [throughput, latency]


def write(results: dict[str, Any], stem: Path, with_plots: bool = True) -> list[Path]:
    """<stem>.md, <stem>.json and the PNGs; the paths written."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    plots = plot(results, stem) if with_plots else []
    md = stem.with_suffix(".md")
    md.write_text(markdown(results, plots))
    js = stem.with_suffix(".json")
    js.write_text(json.dumps(results, indent=2) + "\n")
    return [md, js, *map(Path, plots)]
