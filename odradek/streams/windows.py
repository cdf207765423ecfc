"""Window definitions (time and session windows for aggregations, join windows for
stream-stream joins) and the byte encodings their stores use.

Closing rules, all on stream time (the highest record timestamp a task has seen):
- a time window [start, end) is closed once end + grace <= stream time; a record whose
  window is closed is late and is not added to it (it may still update later windows of a
  hopping series);
- a session [start, end] is closed once stream time > end + gap + grace; a record is late
  when ts + grace < stream time. A record that is not late can never reach a closed
  session (it is more than gap past its end), so a closed session never changes again;
- a join window buffers a record until no record that is not late can match it."""

from __future__ import annotations

import struct
from dataclasses import dataclass

_BIAS = 1 << 63


def encode_ts(ts: int) -> bytes:
    """8 bytes that sort as the signed timestamps do (negative ones included)."""
    return struct.pack(">Q", ts + _BIAS)


def decode_ts(data: bytes) -> int:
    return int(struct.unpack(">Q", data)[0]) - _BIAS


def length_prefixed(key: bytes) -> bytes:
    """The key with its length first, so that no key's entries fall inside another key's
    range ("a" + timestamp could otherwise collide with "ab..." in a prefix scan)."""
    return struct.pack(">I", len(key)) + key


class _FixedWindows:
    """What tumbling and hopping windows share: windows [start, start + size_ms)."""

    size_ms: int
    grace_ms: int

    def _check(self) -> None:
        if self.size_ms <= 0 or self.grace_ms < 0:
            raise ValueError("a window needs size_ms > 0 and grace_ms >= 0")

    def closed(self, start: int, stream_time: int) -> bool:
        return start + self.size_ms + self.grace_ms <= stream_time

    def close_time(self, start: int, end: int) -> int:
        """The first stream time at which window [start, end) is closed."""
        return end + self.grace_ms


@dataclass(frozen=True)
class TumblingWindows(_FixedWindows):
    """Fixed, non-overlapping windows [start, start + size)."""

    size_ms: int
    grace_ms: int = 0

    def __post_init__(self) -> None:
        self._check()

    def start_of(self, ts: int) -> int:
        return ts - ts % self.size_ms

    def starts_for(self, ts: int) -> list[int]:
        return [self.start_of(ts)]


@dataclass(frozen=True)
class HoppingWindows(_FixedWindows):
    """Windows of size_ms starting every advance_ms (at multiples of it, from 0): a record
    belongs to every window [k * advance, k * advance + size) that holds its timestamp."""

    size_ms: int
    advance_ms: int
    grace_ms: int = 0

    def __post_init__(self) -> None:
        self._check()
        if not 0 < self.advance_ms <= self.size_ms:
            raise ValueError("hopping windows need 0 < advance_ms <= size_ms")

    def starts_for(self, ts: int) -> list[int]:
        last = ts - ts % self.advance_ms
        first = max(0, last - ((self.size_ms - 1) // self.advance_ms) * self.advance_ms)
        return [s for s in range(first, last + 1, self.advance_ms) if s <= ts < s + self.size_ms]


@dataclass(frozen=True)
class SessionWindows:
    """Per key, records less than or exactly gap_ms apart fall in one session [first ts,
    last ts]; a record that bridges two sessions merges them."""

    gap_ms: int
    grace_ms: int = 0

    def __post_init__(self) -> None:
        if self.gap_ms < 0 or self.grace_ms < 0:
            raise ValueError("session windows need gap_ms >= 0 and grace_ms >= 0")

    def late(self, ts: int, stream_time: int) -> bool:
        return ts + self.grace_ms < stream_time

    def close_time(self, start: int, end: int) -> int:
        return end + self.gap_ms + self.grace_ms + 1


@dataclass(frozen=True)
class JoinWindows:
    """A left record at tl and a right record at tr of one key join when
    tl - before_ms <= tr <= tl + after_ms. A left record is late (dropped) when
    tl + after + grace < stream time, a right one when tr + before + grace < stream time."""

    before_ms: int
    after_ms: int
    grace_ms: int = 0

    def __post_init__(self) -> None:
        if self.before_ms < 0 or self.after_ms < 0 or self.grace_ms < 0:
            raise ValueError("join windows need before_ms, after_ms and grace_ms >= 0")

    @classmethod
    def of(cls, difference_ms: int, grace_ms: int = 0) -> JoinWindows:
        """Records at most difference_ms apart, either way, join."""
        return cls(difference_ms, difference_ms, grace_ms)

    def retention(self) -> int:
        """How far behind stream time a buffered record can still be matched by one that
        is not late (either side): before + after + grace."""
        return self.before_ms + self.after_ms + self.grace_ms


TimeWindows = TumblingWindows | HoppingWindows
