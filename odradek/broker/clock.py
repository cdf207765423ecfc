"""The one clock broker code reads time from.

Production uses the system clock. The whole-broker simulation (tests/sim_broker) installs
a virtual clock with ``set_clock`` so that every deadline, liveness window and timestamp
the brokers compute follows simulated time, and a seed replays exactly. asyncio timers
use the event loop's own clock, which the simulation also makes virtual; perf_counter,
used only to time metrics, is left alone."""

from __future__ import annotations

import time as _time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (deadlines, liveness)."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch (timestamps)."""


class SystemClock:
    def monotonic(self) -> float:
        return _time.monotonic()

    def time(self) -> float:
        return _time.time()


_current: Clock = SystemClock()


def set_clock(clock: Clock) -> Clock:
    """Installs ``clock`` for the whole process; returns the previous one (to restore)."""
    global _current
    previous, _current = _current, clock
    return previous


def get_clock() -> Clock:
    return _current


def monotonic() -> float:
    return _current.monotonic()


def time() -> float:
    return _current.time()


def time_ms() -> int:
    """Wall-clock milliseconds, as record timestamps and the storage layer count them."""
    return int(_current.time() * 1000)
