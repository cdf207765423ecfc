"""One partition of a topic on this broker: its log, and the waiters for new data."""

from __future__ import annotations

import asyncio

import grpc

from odradek.broker.errors import BrokerError
from odradek.storage import AppendInfo, PartitionLog, ReadResult


class Partition:
    def __init__(self, topic: str, index: int, log: PartitionLog) -> None:
        self.topic = topic
        self.index = index
        self.log = log
        # Held across appends and the storage work that runs in a thread (fsync,
        # compaction), since the log is not safe to change from two threads at once.
        self.lock = asyncio.Lock()
        self._appended = asyncio.Event()
        self.closed = False

    @property
    def high_watermark(self) -> int:
        # One replica: what the leader has appended is committed.
        return self.log.log_end_offset

    async def append(self, records: bytes) -> AppendInfo:
        async with self.lock:
            self._check_open()
            info = self.log.append(records)
        self._wake()
        return info

    def read(self, offset: int, max_bytes: int) -> ReadResult:
        self._check_open()
        hw = self.high_watermark
        start = self.log.log_start_offset
        if offset < start or offset > hw:
            raise BrokerError(
                grpc.StatusCode.OUT_OF_RANGE, "OFFSET_OUT_OF_RANGE",
                f"offset {offset} is out of range for partition {self.index} of topic "
                f"{self.topic!r}: valid offsets are {start} to {hw}",
                {"log_start_offset": str(start), "high_watermark": str(hw)})
        return self.log.read(offset, max_bytes, max_offset=hw)

    async def wait_for_append(self, timeout: float) -> None:
        """Returns when something is appended, the partition closes, or timeout passes."""
        event = self._appended
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass

    async def run_locked(self, work: object) -> object:
        """Runs a blocking storage call in a worker thread while holding the lock."""
        async with self.lock:
            if self.closed:
                return None
            return await asyncio.to_thread(work)  # type: ignore[arg-type]

    def close(self, delete: bool = False) -> None:
        self.closed = True
        if delete:
            self.log.delete()
        else:
            self.log.close()
        self._wake()

    def _wake(self) -> None:
        event = self._appended
        self._appended = asyncio.Event()
        event.set()

    def _check_open(self) -> None:
        if self.closed:
            raise BrokerError(
                grpc.StatusCode.NOT_FOUND, "UNKNOWN_TOPIC_OR_PARTITION",
                f"partition {self.index} of topic {self.topic!r} was deleted",
                {"topic": self.topic, "partition": str(self.index)})
