"""Per-topic log settings, named and bounded as Kafka's topic configs are."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1

_INTEGER = re.compile(r"^-?[0-9]+$")
_POLICIES = ("compact", "delete")
_TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")


class ConfigError(ValueError):
    """A config key or value that is not allowed; the message says which and why."""

    reason = "INVALID_CONFIG"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _bounds(low: int | float, high: int | float) -> str:
    if high == LONG_MAX:
        return f"at least {low}"
    return f"between {low} and {high}"


def _parse_int(low: int, high: int) -> Callable[[str, str], int]:
    def parse(key: str, raw: str) -> int:
        text = raw.strip()
        if not _INTEGER.match(text):
            raise ConfigError(f"invalid value {raw!r} for {key}: expected an integer "
                              f"{_bounds(low, high)}")
        value = int(text)
        if not low <= value <= high:
            raise ConfigError(f"invalid value {raw!r} for {key}: must be {_bounds(low, high)}")
        return value
    return parse


def _parse_ratio(key: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"invalid value {raw!r} for {key}: expected a number between 0 and 1")
    return value


def _parse_policy(key: str, raw: str) -> frozenset[str]:
    parts = [p.strip() for p in raw.split(",")]
    bad = [p for p in parts if p not in _POLICIES]
    if not raw.strip() or bad:
        raise ConfigError(f"invalid value {raw!r} for {key}: expected a comma-separated list "
                          f"of {', '.join(_POLICIES)} (e.g. 'delete', 'compact' or "
                          f"'compact,delete')")
    return frozenset(parts)


def _parse_timestamp_type(key: str, raw: str) -> str:
    text = raw.strip()
    if text not in _TIMESTAMP_TYPES:
        raise ConfigError(f"invalid value {raw!r} for {key}: expected one of "
                          f"{', '.join(_TIMESTAMP_TYPES)}")
    return text


def _format(value: Any) -> str:
    if isinstance(value, set | frozenset):
        return ",".join(sorted(value))
    return str(value)


# Kafka key -> (LogConfig field, parser). Order is the order to_dict lists them in.
_KEYS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "segment.bytes": ("segment_bytes", _parse_int(1024, INT_MAX)),
    "segment.ms": ("segment_ms", _parse_int(1, LONG_MAX)),
    "retention.ms": ("retention_ms", _parse_int(-1, LONG_MAX)),
    "retention.bytes": ("retention_bytes", _parse_int(-1, LONG_MAX)),
    "cleanup.policy": ("cleanup_policy", _parse_policy),
    "delete.retention.ms": ("delete_retention_ms", _parse_int(0, LONG_MAX)),
    "min.compaction.lag.ms": ("min_compaction_lag_ms", _parse_int(0, LONG_MAX)),
    "min.cleanable.dirty.ratio": ("min_cleanable_dirty_ratio", _parse_ratio),
    "max.message.bytes": ("max_message_bytes", _parse_int(0, INT_MAX)),
    "index.interval.bytes": ("index_interval_bytes", _parse_int(0, INT_MAX)),
    "message.timestamp.type": ("message_timestamp_type", _parse_timestamp_type),
    "flush.messages": ("flush_messages", _parse_int(1, LONG_MAX)),
    "flush.ms": ("flush_ms", _parse_int(0, LONG_MAX)),
    "min.insync.replicas": ("min_insync_replicas", _parse_int(1, INT_MAX)),
}


@dataclass(frozen=True)
class LogConfig:
    segment_bytes: int = 1073741824
    segment_ms: int = 604800000
    retention_ms: int = 604800000
    retention_bytes: int = -1
    cleanup_policy: frozenset[str] = frozenset({"delete"})
    delete_retention_ms: int = 86400000
    min_compaction_lag_ms: int = 0
    min_cleanable_dirty_ratio: float = 0.5
    max_message_bytes: int = 1048588
    index_interval_bytes: int = 4096
    message_timestamp_type: str = "CreateTime"
    flush_messages: int = LONG_MAX
    flush_ms: int = LONG_MAX
    min_insync_replicas: int = 1

    def __post_init__(self) -> None:
        # Values built in code are held to the same bounds as values parsed from strings.
        for key, (name, parse) in _KEYS.items():
            value = getattr(self, name)
            if isinstance(value, bool):
                raise ConfigError(f"invalid value {value!r} for {key}: booleans are not allowed")
            parsed = parse(key, _format(value))
            if parsed != value:
                raise ConfigError(f"invalid value {value!r} for {key}")
            if name == "cleanup_policy" and not isinstance(value, frozenset):
                object.__setattr__(self, name, parsed)

    @classmethod
    def from_dict(cls, values: Mapping[str, str], base: LogConfig | None = None) -> LogConfig:
        """base (or the defaults) with values applied; every key and value is checked.
        Memoised (the result is immutable): a broker builds the config of every partition
        it hosts again on each metadata change it applies (reconcile), and with 1,000
        partitions that was a tenth of an otherwise idle broker's CPU."""
        items = tuple(values.items())
        if cls is LogConfig:
            try:
                return _from_items(items, base)
            except TypeError:  # an unhashable value: not a string, refused uncached
                pass
        return cls._from_items(items, base)

    @classmethod
    def _from_items(cls, items: tuple[tuple[str, str], ...],
                    base: LogConfig | None) -> LogConfig:
        changes: dict[str, Any] = {}
        for key, raw in items:
            spec = _KEYS.get(key)
            if spec is None:
                raise ConfigError(f"unknown config key {key!r}: allowed keys are "
                                  f"{', '.join(sorted(_KEYS))}")
            if not isinstance(raw, str):
                raise ConfigError(f"invalid value {raw!r} for {key}: values are strings")
            name, parse = spec
            changes[name] = parse(key, raw)
        return replace(base if base is not None else cls(), **changes)

    def to_dict(self) -> dict[str, str]:
        return {key: _format(getattr(self, name)) for key, (name, _) in _KEYS.items()}

    def overrides(self) -> dict[str, str]:
        return {k: v for k, v in self.to_dict().items() if DEFAULTS[k] != v}

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"


DEFAULTS: dict[str, str] = LogConfig().to_dict()


@functools.lru_cache(maxsize=1024)
def _from_items(items: tuple[tuple[str, str], ...], base: LogConfig | None) -> LogConfig:
    return LogConfig._from_items(items, base)

assert [f.name for f in fields(LogConfig)] == [name for name, _ in _KEYS.values()]
