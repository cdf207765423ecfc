"""Encodes records into a RecordBatch v2.

The per-record encoding is the codec's that odradek.records._impl picks (compiled or
pure); compression and the batch's attributes are decided here, for both."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from odradek.records._impl import RecordsBuffer, frame_batch
from odradek.records.batch import ATTR_CONTROL, BatchHeader
from odradek.records.compression import Compression, compress
from odradek.records.record import Record

Header = tuple[str, bytes | None]
Frame = Callable[[int, int, int, int, int, int, int, int, int, int, bytes], bytes]

NO_PRODUCER_ID = -1
NO_SEQUENCE = -1


class BatchBuilder(RecordsBuffer):
    """Accumulates records for one batch (`append(timestamp, key, value, headers)`,
    `len()`, `size_estimate`); `build()` returns the encoded bytes.

    Offsets within the batch are 0..n-1; the broker assigns the base offset. A subclass
    of the codec's buffer, so that append, called once per record, is the codec's own
    method with no Python call in between."""

    def __init__(
        self,
        compression: Compression = Compression.NONE,
        producer_id: int = NO_PRODUCER_ID,
        producer_epoch: int = -1,
        base_sequence: int = NO_SEQUENCE,
        control: bool = False,
    ) -> None:
        super().__init__()
        self.compression = compression
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.base_sequence = base_sequence
        self.control = control

    def build(self) -> bytes:
        return _finish(frame_batch, self, self.compression, self.producer_id,
                       self.producer_epoch, self.base_sequence, self.control)


def _finish(
    frame: Frame, records: RecordsBuffer, compression: Compression, producer_id: int,
    producer_epoch: int, base_sequence: int, control: bool,
) -> bytes:
    """The batch of records, framed by either codec's frame_batch (the tests compare the
    two through here)."""
    count = len(records)
    if count == 0:
        raise ValueError("a batch needs at least one record")
    attributes = int(compression) | (ATTR_CONTROL if control else 0)
    return frame(0, -1, attributes, count - 1, records.base_timestamp, records.max_timestamp,
                 producer_id, producer_epoch, base_sequence, count,
                 compress(compression, records.body()))


def rebuild_batch(header: BatchHeader, records: Sequence[Record]) -> bytes:
    """Re-encodes a batch with a subset of its records (for compaction).

    Keeps everything that describes the batch: baseOffset, lastOffsetDelta (so the batch
    still spans the same offsets), partitionLeaderEpoch, attributes, producer fields and
    baseTimestamp; each kept record keeps its offset. maxTimestamp is recomputed over the
    kept records, except for LogAppendTime batches, whose records all carry it."""
    return _rebuild(RecordsBuffer, frame_batch, header, records)


def _rebuild(
    buffer_type: type[RecordsBuffer], frame: Frame, header: BatchHeader,
    records: Sequence[Record],
) -> bytes:
    if not records:
        raise ValueError("a batch needs at least one record")
    body = buffer_type()
    max_ts = records[0].timestamp
    for rec in records:
        max_ts = max(max_ts, rec.timestamp)
        body.append_raw(rec.timestamp - header.base_timestamp,
                        rec.offset - header.base_offset, rec.key, rec.value, rec.headers)
    if header.log_append_time:
        max_ts = header.max_timestamp
    return frame(header.base_offset, header.leader_epoch, header.attributes,
                 header.last_offset_delta, header.base_timestamp, max_ts, header.producer_id,
                 header.producer_epoch, header.base_sequence, len(records),
                 compress(Compression(header.compression), body.body()))


def encode_batch(
    records: Iterable[tuple[int, bytes | None, bytes | None]],
    compression: Compression = Compression.NONE,
) -> bytes:
    """Convenience: one batch from (timestamp, key, value) triples."""
    builder = BatchBuilder(compression)
    for timestamp, key, value in records:
        builder.append(timestamp, key, value)
    return builder.build()
