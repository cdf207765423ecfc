"""LogConfig: Kafka-named keys, defaults, validation with precise messages."""

from __future__ import annotations

import pytest

from odradek.storage import DEFAULTS, ConfigError, LogConfig


def test_defaults_round_trip() -> None:
    config = LogConfig.from_dict({})
    assert config == LogConfig()
    assert config.to_dict() == DEFAULTS
    assert config.overrides() == {}
    assert DEFAULTS["segment.bytes"] == "1073741824"
    assert DEFAULTS["cleanup.policy"] == "delete"
    assert DEFAULTS["flush.ms"] == "9223372036854775807"
    assert len(DEFAULTS) == 14


def test_from_dict_applies_on_base() -> None:
    base = LogConfig.from_dict({"retention.ms": "-1", "segment.bytes": "2048"})
    config = LogConfig.from_dict({"cleanup.policy": "delete,compact",
                                  "min.cleanable.dirty.ratio": "0.25",
                                  "message.timestamp.type": "LogAppendTime"}, base=base)
    assert config.retention_ms == -1 and config.segment_bytes == 2048
    assert config.cleanup_policy == frozenset({"compact", "delete"})
    assert config.overrides() == {
        "retention.ms": "-1", "segment.bytes": "2048", "cleanup.policy": "compact,delete",
        "min.cleanable.dirty.ratio": "0.25", "message.timestamp.type": "LogAppendTime"}
    assert LogConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(("values", "message"), [
    ({"retention.hours": "1"}, "unknown config key 'retention.hours': allowed keys are"),
    ({"segment.bytes": "abc"},
     "invalid value 'abc' for segment.bytes: expected an integer between 1024 and 2147483647"),
    ({"segment.bytes": "1.5"}, "invalid value '1.5' for segment.bytes: expected an integer"),
    ({"segment.bytes": "100"},
     "invalid value '100' for segment.bytes: must be between 1024 and 2147483647"),
    ({"segment.bytes": "4294967296"},
     "invalid value '4294967296' for segment.bytes: must be between 1024 and 2147483647"),
    ({"retention.ms": "-2"}, "invalid value '-2' for retention.ms: must be at least -1"),
    ({"flush.messages": "0"}, "invalid value '0' for flush.messages: must be at least 1"),
    ({"min.cleanable.dirty.ratio": "1.5"},
     "invalid value '1.5' for min.cleanable.dirty.ratio: expected a number between 0 and 1"),
    ({"min.cleanable.dirty.ratio": "nan"}, "expected a number between 0 and 1"),
    ({"cleanup.policy": "compact,remove"},
     "invalid value 'compact,remove' for cleanup.policy: expected a comma-separated list of "
     "compact, delete"),
    ({"cleanup.policy": ""}, "invalid value '' for cleanup.policy"),
    ({"message.timestamp.type": "createtime"},
     "invalid value 'createtime' for message.timestamp.type: expected one of CreateTime, "
     "LogAppendTime"),
    ({"min.insync.replicas": "0"},
     "invalid value '0' for min.insync.replicas: must be between 1 and 2147483647"),
])
def test_invalid_values(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        LogConfig.from_dict(values)
    assert e.value.reason == "INVALID_CONFIG"
    assert message in str(e.value)


def test_constructor_checks_bounds_too() -> None:
    with pytest.raises(ConfigError, match="segment.bytes"):
        LogConfig(segment_bytes=10)
    config = LogConfig(cleanup_policy={"compact"})  # type: ignore[arg-type]
    assert isinstance(config.cleanup_policy, frozenset)
