"""Synchronous wrappers: each runs its async client on an event loop in a daemon thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from odradek.client.admin import Admin
from odradek.client.consumer import Consumer, ConsumerRecord, RebalanceCallback, TopicPartition
from odradek.client.delivery import RecordMetadata
from odradek.client.producer import HeaderInput, Producer
from odradek.client.types import (
    BrokerConfig,
    CommittedOffset,
    DrainPlan,
    ElectionResult,
    GroupDescription,
    GroupSummary,
    Metadata,
    OffsetAnswer,
    OffsetChange,
    TopicDescription,
    TopicSummary,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from odradek.client.options import AdminKwargs, ConsumerKwargs, ProducerKwargs

T = TypeVar("T")


class _LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self.submit(coro).result(timeout)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class _SyncBase(ABC):
    _runner: _LoopThread

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def close(self) -> None:
        """Flushes what is pending and stops the background loop."""


class SyncProducer(_SyncBase):
    """Producer for synchronous code. `send()` returns a concurrent.futures.Future."""

    def __init__(self, bootstrap: str | Sequence[str] | None = None,
                 **options: Unpack[ProducerKwargs]) -> None:
        self._runner = _LoopThread("odradek-producer")

        async def make() -> Producer:
            return Producer(bootstrap, **options)

        self._producer = self._runner.run(make())

    @property
    def producer(self) -> Producer:
        return self._producer

    def send(
        self,
        topic: str,
        value: bytes | str | None,
        key: bytes | str | None = None,
        partition: int | None = None,
        headers: Sequence[HeaderInput] = (),
        timestamp_ms: int | None = None,
    ) -> concurrent.futures.Future[RecordMetadata]:
        return self._runner.submit(
            self._producer.send_and_wait(topic, value, key, partition, headers, timestamp_ms))

    def send_and_wait(
        self,
        topic: str,
        value: bytes | str | None,
        key: bytes | str | None = None,
        partition: int | None = None,
        headers: Sequence[HeaderInput] = (),
        timestamp_ms: int | None = None,
        timeout: float | None = None,
    ) -> RecordMetadata:
        return self.send(topic, value, key, partition, headers, timestamp_ms).result(timeout)

    def flush(self, timeout: float | None = None) -> None:
        self._runner.run(self._producer.flush(timeout))

    def close(self, timeout: float | None = None) -> None:
        if self._runner.loop.is_closed():
            return
        try:
            self._runner.run(self._producer.close(timeout))
        finally:
            self._runner.stop()


class SyncConsumer(_SyncBase):
    def __init__(self, bootstrap: str | Sequence[str] | None = None,
                 **options: Unpack[ConsumerKwargs]) -> None:
        self._runner = _LoopThread("odradek-consumer")

        async def make() -> Consumer:
            return Consumer(bootstrap, **options)

        self._consumer = self._runner.run(make())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def assign(self, partitions: Iterable[tuple[str, int]]) -> None:
        tps = list(partitions)

        async def go() -> None:
            self._consumer.assign(tps)

        self._call(go())

    def assignment(self) -> set[TopicPartition]:
        return self._consumer.assignment()

    def partitions_for(self, topic: str) -> list[TopicPartition]:
        return self._call(self._consumer.partitions_for(topic))

    def seek(self, tp: tuple[str, int], offset: int) -> None:
        async def go() -> None:
            self._consumer.seek(tp, offset)

        self._call(go())

    def seek_to_beginning(self, *tps: tuple[str, int]) -> None:
        self._call(self._consumer.seek_to_beginning(*tps))

    def seek_to_end(self, *tps: tuple[str, int]) -> None:
        self._call(self._consumer.seek_to_end(*tps))

    def seek_to_timestamp(self, tp: tuple[str, int], timestamp_ms: int) -> int:
        return self._call(self._consumer.seek_to_timestamp(tp, timestamp_ms))

    def position(self, tp: tuple[str, int]) -> int:
        return self._call(self._consumer.position(tp))

    def beginning_offsets(self, tps: Iterable[tuple[str, int]]) -> dict[TopicPartition, int]:
        return self._call(self._consumer.beginning_offsets(list(tps)))

    def end_offsets(self, tps: Iterable[tuple[str, int]]) -> dict[TopicPartition, int]:
        return self._call(self._consumer.end_offsets(list(tps)))

    def poll(self, timeout_ms: float = 0, max_records: int | None = None) -> list[ConsumerRecord]:
        return self._call(self._consumer.poll(timeout_ms, max_records))

    def subscribe(self, topics: Iterable[str] | str | re.Pattern[str],
                  **callbacks: RebalanceCallback | None) -> None:
        """As Consumer.subscribe; the callbacks run on the client's event loop thread."""
        async def go() -> None:
            self._consumer.subscribe(topics, **callbacks)

        self._call(go())

    def commit(self, offsets: dict[tuple[str, int], int] | None = None) -> None:
        self._call(self._consumer.commit(offsets))

    def commit_async(self, offsets: dict[tuple[str, int], int] | None = None) -> None:
        """Starts a commit; a failure is logged."""
        async def go() -> None:
            self._consumer.commit_async(offsets)

        self._call(go())

    def committed(self, tps: Iterable[tuple[str, int]]) -> dict[TopicPartition, int]:
        return self._call(self._consumer.committed(list(tps)))

    def close(self) -> None:
        if self._runner.loop.is_closed():
            return
        try:
            self._call(self._consumer.close())
        finally:
            self._runner.stop()


class SyncAdmin(_SyncBase):
    def __init__(self, bootstrap: str | Sequence[str] | None = None,
                 **options: Unpack[AdminKwargs]) -> None:
        self._runner = _LoopThread("odradek-admin")

        async def make() -> Admin:
            return Admin(bootstrap, **options)

        self._admin = self._runner.run(make())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 0,
        configs: Mapping[str, str] | None = None,
        validate_only: bool = False,
    ) -> TopicDescription:
        return self._call(self._admin.create_topic(
            name, partitions, replication_factor, configs, validate_only))

    def delete_topic(self, name: str) -> None:
        self._call(self._admin.delete_topic(name))

    def list_topics(self, include_internal: bool = False) -> list[TopicSummary]:
        return self._call(self._admin.list_topics(include_internal))

    def reassign_partition(self, topic: str, partition: int, replicas: list[int],
                           validate_only: bool = False) -> TopicDescription:
        return self._call(self._admin.reassign_partition(topic, partition, replicas,
                                                         validate_only))

    def drain_broker(self, broker_id: int, validate_only: bool = False) -> DrainPlan:
        return self._call(self._admin.drain_broker(broker_id, validate_only))

    def describe_topic(self, name: str) -> TopicDescription:
        return self._call(self._admin.describe_topic(name))

    def alter_configs(
        self,
        name: str,
        set: Mapping[str, str] | None = None,  # noqa: A002
        delete: Sequence[str] = (),
        validate_only: bool = False,
    ) -> TopicDescription:
        return self._call(self._admin.alter_configs(name, set, delete, validate_only))

    def create_partitions(
        self, name: str, total: int, validate_only: bool = False,
    ) -> TopicDescription:
        return self._call(self._admin.create_partitions(name, total, validate_only))

    def metadata(self, topics: Sequence[str] | None = None) -> Metadata:
        return self._call(self._admin.metadata(topics))

    def delete_records(self, topic: str, partition: int, before_offset: int) -> int:
        return self._call(self._admin.delete_records(topic, partition, before_offset))

    def elect_leaders(self, partitions: Sequence[tuple[str, int]] | None = None,
                      timeout_ms: int = 10_000) -> list[ElectionResult]:
        return self._call(self._admin.elect_leaders(partitions, timeout_ms))

    def describe_broker_configs(self, broker_id: int) -> list[BrokerConfig]:
        return self._call(self._admin.describe_broker_configs(broker_id))

    def list_offsets(
        self, topic: str, partition: int, spec: str = "latest", timestamp_ms: int = 0,
    ) -> OffsetAnswer:
        return self._call(self._admin.list_offsets(topic, partition, spec, timestamp_ms))

    def list_groups(self) -> list[GroupSummary]:
        return self._call(self._admin.list_groups())

    def describe_group(self, group_id: str) -> GroupDescription:
        return self._call(self._admin.describe_group(group_id))

    def delete_group(self, group_id: str) -> None:
        self._call(self._admin.delete_group(group_id))

    def group_offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        return self._call(self._admin.group_offsets(group_id))

    def delete_group_offsets(self, group_id: str,
                             topics: Mapping[str, Sequence[int]] | Sequence[str],
                             ) -> list[CommittedOffset]:
        return self._call(self._admin.delete_group_offsets(group_id, topics))

    def reset_group_offsets(
        self, group_id: str, topics: Mapping[str, Sequence[int]] | Sequence[str] = (), *,
        to_earliest: bool = False, to_latest: bool = False,
        to_timestamp_ms: int | None = None, to_offset: int | None = None,
        shift_by: int | None = None, dry_run: bool = False,
    ) -> list[OffsetChange]:
        return self._call(self._admin.reset_group_offsets(
            group_id, topics, to_earliest=to_earliest, to_latest=to_latest,
            to_timestamp_ms=to_timestamp_ms, to_offset=to_offset, shift_by=shift_by,
            dry_run=dry_run))

    def close(self) -> None:
        if self._runner.loop.is_closed():
            return
        try:
            self._call(self._admin.close())
        finally:
            self._runner.stop()
