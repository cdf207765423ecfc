"""The operator's own Prometheus metrics: reconciles, errors and durations per kind."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import Counter, Histogram

RECONCILES = Counter("odradek_operator_reconciles", "Reconciles run, by kind and result",
                     ["kind", "result"])
ERRORS = Counter("odradek_operator_reconcile_errors",
                 "Reconciles that ended in an error (the brokers refused, or were not "
                 "reachable), by kind and reason", ["kind", "reason"])
DURATION = Histogram("odradek_operator_reconcile_duration_seconds",
                     "How long a reconcile took, by kind", ["kind"],
                     buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


class Tally:
    """What one reconcile ended with (set by the handler): ready, or an error reason."""

    def __init__(self) -> None:
        self.error: str | None = None

    def fail(self, reason: str) -> None:
        self.error = reason


@asynccontextmanager
async def reconciling(kind: str) -> AsyncIterator[Tally]:
    tally = Tally()
    start = time.perf_counter()
    try:
        yield tally
    except BaseException as exc:
        tally.fail(type(exc).__name__)
        raise
    finally:
        DURATION.labels(kind).observe(time.perf_counter() - start)
        RECONCILES.labels(kind, "error" if tally.error else "ok").inc()
        if tally.error:
            ERRORS.labels(kind, tally.error).inc()
