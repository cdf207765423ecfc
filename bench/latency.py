"""Latency percentiles as every comparison part reports them (ms, nearest rank)."""

from __future__ import annotations

QUANTILES = (("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0))


def latency_ms(seconds: list[float]) -> dict[str, float]:
    """p50, p99, p99.9 and max of latencies given in seconds, in milliseconds."""
    ordered = sorted(seconds)
    if not ordered:
        return {name: 0.0 for name, _ in QUANTILES}
    last = len(ordered) - 1
    return {name: round(ordered[min(last, round(q * last))] * 1000, 3)
            for name, q in QUANTILES}
