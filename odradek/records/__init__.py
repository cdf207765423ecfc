"""Kafka RecordBatch v2: the one record format Odradek uses on disk and on the wire.

Shared by the storage layer and the client; knows nothing of either.
"""

from odradek.records.batch import (
    BATCH_HEADER_SIZE,
    BatchHeader,
    InvalidRecordError,
    iter_batches,
    parse_header,
    validate_batches,
)
from odradek.records.builder import BatchBuilder, encode_batch, rebuild_batch
from odradek.records.compression import Compression
from odradek.records.reader import Record, decode_batch, iter_records

__all__ = [
    "BATCH_HEADER_SIZE",
    "BatchBuilder",
    "BatchHeader",
    "Compression",
    "InvalidRecordError",
    "Record",
    "decode_batch",
    "encode_batch",
    "iter_batches",
    "iter_records",
    "parse_header",
    "rebuild_batch",
    "validate_batches",
]
