"""Rule-based property test: the partition log against an in-memory model, through
appends, reads, rolls (tiny segments), truncation, clean reopens and torn-tail crashes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from odradek.records import BatchBuilder, Compression, iter_batches, iter_records
from odradek.storage import LogConfig, PartitionLog
from tests.unit.storage_util import Clock

Rec = tuple[int, int, bytes | None, bytes | None]  # offset, timestamp, key, value


class LogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp())
        self.dir = self.tmp / "p"
        self.batches: list[tuple[int, int, int, list[Rec]]] = []  # base, next, size, records
        self.clock = Clock()
        self.config = LogConfig()
        self.log: PartitionLog | None = None

    @initialize(interval=st.sampled_from([0, 64, 300, 4096]))
    def open(self, interval: int) -> None:
        self.config = LogConfig(segment_bytes=1024, index_interval_bytes=interval)
        self.log = PartitionLog.open(self.dir, self.config, clock=self.clock)

    @property
    def end(self) -> int:
        return self.batches[-1][1] if self.batches else 0

    def teardown(self) -> None:
        if self.log is not None:
            self.log._close_files()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(sizes=st.lists(st.integers(0, 300), min_size=1, max_size=4),
          batches=st.integers(1, 3),
          compression=st.sampled_from([Compression.NONE, Compression.GZIP]))
    def append(self, sizes: list[int], batches: int, compression: Compression) -> None:
        assert self.log is not None
        data = b""
        expected = []
        offset = self.end
        for b in range(batches):
            builder = BatchBuilder(compression)
            recs: list[Rec] = []
            for i, size in enumerate(sizes):
                ts = self.clock.now + i
                key = b"k%d" % (offset + i)
                value = (b"%d:" % (offset + i) + b"v" * size) if size else None
                builder.append(ts, key, value)
                recs.append((offset + i, ts, key, value))
            raw = builder.build()
            data += raw
            expected.append((offset, offset + len(sizes), len(raw), recs))
            offset += len(sizes)
            self.clock.now += b
        info = self.log.append(data)
        assert (info.base_offset, info.last_offset) == (expected[0][0], offset - 1)
        self.batches.extend(expected)

    @rule(data=st.data(), max_bytes=st.integers(1, 3000), hw=st.booleans())
    def read(self, data: st.DataObject, max_bytes: int, hw: bool) -> None:
        assert self.log is not None
        offset = data.draw(st.integers(0, self.end), label="offset")
        max_offset = data.draw(st.integers(0, self.end), label="max_offset") if hw else None
        result = self.log.read(offset, max_bytes, max_offset)
        # Nothing at or past the high watermark; no batch that starts at or after it.
        want = [b for b in self.batches if b[1] > offset
                and (max_offset is None or (b[0] < max_offset and offset < max_offset))]
        if not want:
            assert result.data == b"" and result.next_offset == offset
            return
        got = [(h.base_offset, h.next_offset, h.size) for _, h in iter_batches(result.data)]
        assert sum(size for _, _, size in got) == len(result.data)  # whole batches only
        assert got == [(b, n, s) for b, n, s, _ in want[: len(got)]]
        assert len(got) == 1 or len(result.data) <= max_bytes
        if len(got) < len(want):
            # Stopped because the next batch would not fit, or at the end of a segment
            # (a read returns batches of one segment).
            ends_segment = any(s.next_offset == got[-1][1] for s in self.log.segments)
            assert ends_segment or len(result.data) + want[len(got)][2] > max_bytes
        assert result.next_offset == got[-1][1]
        records = [(r.offset, r.timestamp, r.key, r.value) for r in iter_records(result.data)]
        assert records == [r for b in want[: len(got)] for r in b[3]]

    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        assert self.log is not None
        offset = data.draw(st.integers(0, self.end))
        self.log.truncate_to(offset)
        self.batches = [b for b in self.batches if b[1] <= offset]

    @rule()
    def reopen(self) -> None:
        assert self.log is not None
        self.log.close()
        self.log = PartitionLog.open(self.dir, self.config, clock=self.clock)

    @precondition(lambda self: self.batches and self.log.segments[-1].size > 0)
    @rule(data=st.data())
    def crash_with_torn_tail(self, data: st.DataObject) -> None:
        """The last write was only partly on disk: recovery drops exactly that batch."""
        assert self.log is not None
        path = self.log.segments[-1].log_path
        self.log._close_files()
        cut = data.draw(st.integers(1, self.batches[-1][2]), label="cut")
        os.truncate(path, path.stat().st_size - cut)
        self.batches.pop()
        self.log = PartitionLog.open(self.dir, self.config, clock=self.clock)

    @invariant()
    def offsets_match(self) -> None:
        if self.log is not None:
            assert self.log.log_start_offset == 0
            assert self.log.log_end_offset == self.end
            assert self.log.size_bytes == sum(b[2] for b in self.batches)


LogModel.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestLogModel = LogModel.TestCase
