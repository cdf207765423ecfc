"""Bootstrap parsing, one gRPC channel per broker address, and the metadata cache."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from odradek.client.auth import ChannelSession, ScramLogin, interceptors
from odradek.client.errors import (
    LeaderNotAvailableError,
    OdradekError,
    UnavailableError,
    UnknownTopicOrPartitionError,
    from_rpc_error,
)
from odradek.security.hosts import host_port
from odradek.security.tls import ClientTLS, TLSConfigError, open_channel
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 0),
)

T = TypeVar("T")


def parse_bootstrap(bootstrap: str | Sequence[str] | None) -> list[str]:
    """"host:port,host:port" (or a list of them) -> ["host:port", ...]. A missing port
    means 9092; None means $ODRADEK_BOOTSTRAP or 127.0.0.1:9092."""
    if bootstrap is None:
        bootstrap = os.environ.get("ODRADEK_BOOTSTRAP") or DEFAULT_BOOTSTRAP
    items = bootstrap.split(",") if isinstance(bootstrap, str) else list(bootstrap)
    out: list[str] = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):  # [ipv6]:port
            host, sep, port = item.rpartition("]:")
            address = f"{host}]:{port}" if sep else f"{item}:9092"
        elif item.count(":") == 1:
            host, port = item.split(":")
            if not port.isdigit():
                raise ValueError(f"bad port in bootstrap address {item!r}")
            address = item
        elif ":" in item:
            raise ValueError(f"bootstrap address {item!r}: write IPv6 hosts as [host]:port")
        else:
            address = f"{item}:9092"
        if address not in out:
            out.append(address)
    if not out:
        raise ValueError("no bootstrap address given")
    return out


def _consume_exception(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _host_of(address: str) -> str:
    return address.rpartition(":")[0]


@dataclass(slots=True)
class TopicInfo:
    name: str
    # partition -> leader broker id (-1: none)
    leaders: list[int] = field(default_factory=list)

    @property
    def num_partitions(self) -> int:
        return len(self.leaders)


class Cluster:
    """What a client knows of the cluster: channels, brokers and partition leaders.

    Shared by Producer, Consumer and Admin; every method runs on one event loop."""

    def __init__(
        self,
        bootstrap: str | Sequence[str] | None,
        *,
        request_timeout_ms: int = 30_000,
        metadata_max_age_ms: int = 300_000,
        channel_options: Sequence[tuple[str, Any]] = (),
        tls: ClientTLS | None = None,
        login: ScramLogin | None = None,
    ) -> None:
        self.bootstrap = parse_bootstrap(bootstrap)
        self.request_timeout = request_timeout_ms / 1000
        self.metadata_max_age = metadata_max_age_ms / 1000
        self._options = tuple(CHANNEL_OPTIONS) + tuple(channel_options)
        self._channels: dict[str, grpc.aio.Channel] = {}
        # None: plaintext. TLS files are read when a channel is made.
        self.tls = tls
        # SCRAM credentials; each channel (broker) logs in on its first call.
        self.login = login
        self._broker_stubs: dict[str, pb_grpc.BrokerStub] = {}
        self._admin_stubs: dict[str, pb_grpc.AdminStub] = {}
        self.brokers: dict[int, str] = {}
        self.topics: dict[str, TopicInfo] = {}
        self.cluster_id = ""
        self.controller_id = -1
        self._leader_override: dict[tuple[str, int], str] = {}
        self._refreshed_at = 0.0
        self._refresh: asyncio.Task[pb.MetadataResponse] | None = None
        self._refresh_topics: frozenset[str] | None = None
        self._closed = False

    # -- channels ------------------------------------------------------------------------

    def channel(self, address: str) -> grpc.aio.Channel:
        ch = self._channels.get(address)
        if ch is None:
            if self._closed:
                raise UnavailableError("the client is closed")
            session = ChannelSession(self.login) if self.login is not None else None
            try:
                ch = open_channel(address, self.tls, self._options,
                                  interceptors(session) if session is not None else None)
            except TLSConfigError as exc:
                raise UnavailableError(str(exc)) from None
            if session is not None:
                session.channel = ch
            self._channels[address] = ch
        return ch

    def drop_channel(self, address: str) -> None:
        """With TLS, a channel that failed is replaced: the next one reads the certificate
        files again (rotated client certificates, a CA bundle that changed)."""
        if self.tls is None:
            return  # plaintext channels reconnect by themselves; nothing to re-read
        ch = self._channels.pop(address, None)
        self._broker_stubs.pop(address, None)
        self._admin_stubs.pop(address, None)
        if ch is not None:
            asyncio.ensure_future(ch.close(grace=5)).add_done_callback(_consume_exception)

    def broker_stub(self, address: str) -> pb_grpc.BrokerStub:
        stub = self._broker_stubs.get(address)
        if stub is None:
            stub = pb_grpc.BrokerStub(self.channel(address))  # type: ignore[no-untyped-call]
            self._broker_stubs[address] = stub
        return stub

    def admin_stub(self, address: str) -> pb_grpc.AdminStub:
        stub = self._admin_stubs.get(address)
        if stub is None:
            stub = pb_grpc.AdminStub(self.channel(address))  # type: ignore[no-untyped-call]
            self._admin_stubs[address] = stub
        return stub

    def candidate_addresses(self) -> list[str]:
        """Bootstrap addresses first (shuffled), then every other known broker."""
        first = list(self.bootstrap)
        random.shuffle(first)
        return first + [a for a in self.brokers.values() if a not in first]

    async def any_broker(
        self, call: Callable[[str], Awaitable[T]], *, retry_codes: bool = True,
    ) -> T:
        """Runs call(address) against the first broker that answers. Only transport
        failures (UNAVAILABLE) move on to the next address; broker errors are raised."""
        last: OdradekError | None = None
        for address in self.candidate_addresses():
            try:
                return await call(address)
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
                if not (retry_codes and err.reason == "UNAVAILABLE"):
                    raise err from None
                self.drop_channel(address)
                last = err
        assert last is not None
        raise UnavailableError(
            f"no broker answered at {', '.join(self.bootstrap)}: {last.message}",
            metadata={"bootstrap": ",".join(self.bootstrap)}) from None

    # -- metadata ------------------------------------------------------------------------

    async def refresh(self, topics: Sequence[str] | None = None) -> pb.MetadataResponse:
        """Fetches metadata (all topics when topics is None); concurrent callers share
        one request when it covers what they asked for."""
        wanted = None if topics is None else frozenset(topics)
        task = self._refresh
        if task is not None and not task.done() and (
            self._refresh_topics is None or (wanted is not None and wanted <= self._refresh_topics)
        ):
            return await asyncio.shield(task)
        task = asyncio.ensure_future(self._fetch_metadata(wanted))
        task.add_done_callback(_consume_exception)
        self._refresh = task
        self._refresh_topics = wanted
        return await asyncio.shield(task)

    async def _fetch_metadata(self, topics: frozenset[str] | None) -> pb.MetadataResponse:
        request = pb.MetadataRequest(topics=sorted(topics) if topics else [])

        async def call(address: str) -> tuple[str, pb.MetadataResponse]:
            resp = await self.broker_stub(address).Metadata(request, timeout=self.request_timeout)
            return address, resp

        address, resp = await self.any_broker(call)
        self._apply(address, resp, topics)
        return resp

    def _apply(
        self, asked: str, resp: pb.MetadataResponse, topics: frozenset[str] | None,
    ) -> None:
        self.cluster_id = resp.cluster_id
        self.controller_id = resp.controller_id
        brokers: dict[int, str] = {}
        for b in resp.brokers:
            host = b.host
            if host in ("", "0.0.0.0", "::", "[::]"):
                host = _host_of(asked)  # the broker listens everywhere: reach it as we did
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"
            brokers[b.id] = host_port(host, b.port)
        self.brokers = brokers
        if topics is None:
            self.topics = {}
        for t in resp.topics:
            leaders = [-1] * len(t.partitions)
            for p in t.partitions:
                if 0 <= p.partition < len(leaders):
                    leaders[p.partition] = p.leader
            self.topics[t.name] = TopicInfo(t.name, leaders)
        if topics is not None:
            returned = {t.name for t in resp.topics}
            for name in topics - returned:
                self.topics.pop(name, None)
        for key in [k for k in self._leader_override if k[0] in {t.name for t in resp.topics}]:
            del self._leader_override[key]
        self._refreshed_at = time.monotonic()

    def metadata_stale(self) -> bool:
        return time.monotonic() - self._refreshed_at > self.metadata_max_age

    async def topic(self, name: str, *, refresh: bool = False) -> TopicInfo:
        """The topic's partitions, fetching metadata when unknown; raises
        UnknownTopicOrPartitionError when the cluster does not have it."""
        info = self.topics.get(name)
        if info is None or refresh or self.metadata_stale():
            await self.refresh([name])
            info = self.topics.get(name)
        if info is None:
            raise UnknownTopicOrPartitionError(
                f"topic {name!r} does not exist", metadata={"topic": name})
        return info

    def set_leader_hint(self, topic: str, partition: int, address: str) -> None:
        self._leader_override[(topic, partition)] = address

    def leader_address(self, topic: str, partition: int) -> str | None:
        hint = self._leader_override.get((topic, partition))
        if hint is not None:
            return hint
        info = self.topics.get(topic)
        if info is None or not 0 <= partition < info.num_partitions:
            return None
        leader = info.leaders[partition]
        if leader < 0:
            return None
        return self.brokers.get(leader)

    async def leader(self, topic: str, partition: int) -> str:
        """Address of the partition's leader, refreshing metadata once if unknown."""
        address = self.leader_address(topic, partition)
        if address is not None:
            return address
        info = await self.topic(topic, refresh=True)
        if not 0 <= partition < info.num_partitions:
            raise UnknownTopicOrPartitionError(
                f"topic {topic!r} has no partition {partition} "
                f"(it has {info.num_partitions})",
                metadata={"topic": topic, "partition": str(partition)})
        address = self.leader_address(topic, partition)
        if address is None:
            raise LeaderNotAvailableError(
                f"partition {topic}-{partition} has no leader right now",
                metadata={"topic": topic, "partition": str(partition)})
        return address

    async def leader_call(
        self,
        topic: str,
        partition: int,
        call: Callable[[Any], Awaitable[T]],
        *,
        timeout: float | None = None,
        backoff: float = 0.1,
        backoff_max: float = 1.0,
        stub: Callable[[str], Any] | None = None,
    ) -> T:
        """Runs call(stub of the partition's leader), retrying retriable errors with
        exponential backoff (refreshing metadata when the leader moved) until timeout
        seconds have passed (None: forever). Other errors are raised at once. The stub is
        the Broker service's unless `stub` makes another from the leader's address."""
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            err: OdradekError
            try:
                address = self.leader_address(topic, partition)
                if address is None:
                    address = await self.leader(topic, partition)
                return await call((stub or self.broker_stub)(address))
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
            except OdradekError as exc:
                err = exc
            if not err.retriable:
                raise err
            attempt += 1
            delay = min(backoff * 2 ** (attempt - 1), backoff_max) * random.uniform(0.8, 1.2)
            if deadline is not None and time.monotonic() + delay > deadline:
                raise err
            await asyncio.sleep(delay)
            await self.after_error(topic, partition, err)

    async def forget_leader(self, topic: str, partition: int) -> None:
        """Drops what is known of the partition's leader and asks the cluster again."""
        self._leader_override.pop((topic, partition), None)
        try:
            await self.refresh([topic])
        except OdradekError:
            pass  # the next attempt reports what is wrong

    async def after_error(self, topic: str, partition: int, err: OdradekError) -> None:
        """Updates what is known of the partition's leader after a failed call."""
        hint = err.leader_hint
        if hint:
            self.set_leader_hint(topic, partition, hint)
        elif err.invalidates_metadata:
            try:
                await self.refresh([topic])
            except OdradekError:
                pass  # the next attempt reports what is wrong

    async def list_offsets(
        self, topic: str, partition: int, spec: int, timestamp_ms: int = 0,
        *, timeout: float | None = None,
    ) -> pb.ListOffsetsResponse:
        request = pb.ListOffsetsRequest(
            topic=topic, partition=partition, spec=spec, timestamp_ms=timestamp_ms)  # type: ignore[arg-type]
        rt = self.request_timeout

        async def call(stub: pb_grpc.BrokerStub) -> pb.ListOffsetsResponse:
            resp: pb.ListOffsetsResponse = await stub.ListOffsets(request, timeout=rt)
            return resp

        return await self.leader_call(
            topic, partition, call, timeout=self.request_timeout if timeout is None else timeout)

    async def close(self) -> None:
        self._closed = True
        if self._refresh is not None and not self._refresh.done():
            self._refresh.cancel()
        channels = list(self._channels.values())
        self._channels.clear()
        self._broker_stubs.clear()
        self._admin_stubs.clear()
        for ch in channels:
            await ch.close()
