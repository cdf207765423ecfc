"""The storage layer: partition logs made of segments, with indexes, recovery, retention
and compaction. Records are Kafka RecordBatch v2 (see odradek.records)."""

from odradek.storage.cleaner import CompactionStats
from odradek.storage.config import DEFAULTS, ConfigError, LogConfig
from odradek.storage.log import (
    AppendInfo,
    CorruptBatchError,
    OffsetOutOfRangeError,
    PartitionLog,
    ReadResult,
)

__all__ = [
    "DEFAULTS",
    "AppendInfo",
    "CompactionStats",
    "ConfigError",
    "CorruptBatchError",
    "LogConfig",
    "OffsetOutOfRangeError",
    "PartitionLog",
    "ReadResult",
]
