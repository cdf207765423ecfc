"""A group member's stream to its coordinator, kept up across coordinator moves.

The stream carries join, heartbeats (with the time since the application last polled),
acknowledgements of assignments and subscription changes; the coordinator pushes each
new assignment. A broken stream is reopened (to wherever the coordinator now is) with
the same member id, so the member keeps its partitions if it is back within its session
timeout."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import grpc

from odradek.client.errors import OdradekError, from_rpc_error
from odradek.client.groups import REDISCOVER, GroupClient
from odradek.v1 import groups_pb2 as gpb

log = logging.getLogger("odradek.client")

TP = tuple[str, int]
TOPIC_CHECK_S = 5.0


@dataclass(frozen=True)
class MemberConfig:
    group_id: str
    instance_id: str = ""
    client_id: str = ""
    session_timeout_ms: int = 10_000
    max_poll_interval_ms: int = 300_000
    strategy: str = "sticky"


class MembershipListener(Protocol):
    def assigned(self, generation: int, partitions: set[TP]) -> None:
        """The complete set of partitions this member should own now."""

    def lost(self) -> None:
        """The group dropped this member: its partitions belong to others now."""

    def failed(self, error: OdradekError) -> None:
        """A fatal error (e.g. another instance with the same instance id)."""


class Membership:
    def __init__(self, groups: GroupClient, config: MemberConfig,
                 topics: Callable[[], Awaitable[list[str]]], listener: MembershipListener,
                 ms_since_poll: Callable[[], int]) -> None:
        self._groups = groups
        self.config = config
        self._topics = topics
        self._listener = listener
        self._ms_since_poll = ms_since_poll
        self.member_id = ""
        self.generation = -1
        # Subscribed topics the coordinator left out: this principal may not describe
        # them (or, to it, they do not exist).
        self.refused_topics: frozenset[str] = frozenset()
        self._heartbeat_s = max(0.1, config.session_timeout_ms / 3000)
        self._out: asyncio.Queue[gpb.MemberRequest] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._leaving = False
        # Cleared when the group drops this member: it rejoins at the application's next
        # poll (as Kafka's consumer does), not while the application is stuck.
        self._polling = asyncio.Event()
        self._polling.set()

    def polled(self) -> None:
        self._polling.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def acknowledge(self, generation: int) -> None:
        self._send(gpb.MemberRequest(ack=gpb.AssignmentAck(generation=generation)))

    def _send(self, request: gpb.MemberRequest) -> None:
        if self._out is not None:
            self._out.put_nowait(request)

    async def stop(self, leave: bool, timeout_s: float = 5.0) -> None:
        """Ends the membership; with leave the coordinator reassigns at once (the leave
        waits for a reconnection if the stream is down), without it (static members) the
        partitions wait a session timeout for this instance."""
        task = self._task
        if task is None:
            return
        if leave and self.member_id and not task.done():
            self._leaving = True
            self._send(gpb.MemberRequest(leave=gpb.LeaveGroup()))
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
            except (TimeoutError, Exception):  # noqa: BLE001 - leaving is best effort
                pass
        self._stopping = True
        task.cancel()
        # Bounded: closing a consumer must not hang on a stream that ignores the cancel.
        done, _ = await asyncio.wait([task], timeout=timeout_s)
        if not done:
            log.warning("membership of %s did not stop within %.0fs", self.config.group_id,
                        timeout_s)
        elif not task.cancelled() and task.exception() is not None:
            log.debug("membership of %s ended: %s", self.config.group_id, task.exception())

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            err: OdradekError | None = None
            await self._polling.wait()
            try:
                topics = await self._topics()
                if not topics:  # a pattern that matches nothing yet
                    await asyncio.sleep(TOPIC_CHECK_S)
                    continue
                address = await self._groups.coordinator(self.config.group_id,
                                                         refresh=attempt > 0)
                await self._session(address, topics)
                if self._leaving:
                    return
                attempt = 0
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
            except OdradekError as exc:
                err = exc
            if self._stopping or (self._leaving and err is not None
                                  and err.reason == "UNKNOWN_MEMBER_ID"):
                return  # stopped, or leaving a group that already dropped us
            if err is not None and not self._recoverable(err):
                self._listener.failed(err)
                return
            attempt += 1
            await asyncio.sleep(min(0.05 * 2 ** attempt, 1.0) * random.uniform(0.8, 1.2))

    def _recoverable(self, err: OdradekError) -> bool:
        if err.reason == "UNKNOWN_MEMBER_ID":
            self.member_id = ""
            self._polling.clear()
            self._listener.lost()
            return True
        if err.reason in REDISCOVER:
            self._groups.forget(self.config.group_id, err)
            return True
        log.debug("membership of %s: %s", self.config.group_id, err)
        return err.retriable

    async def _session(self, address: str, topics: list[str]) -> None:
        c = self.config
        out: asyncio.Queue[gpb.MemberRequest] = asyncio.Queue()
        join = gpb.MemberRequest(join=gpb.JoinGroup(
            group_id=c.group_id, member_id=self.member_id, instance_id=c.instance_id,
            client_id=c.client_id, topics=topics, session_timeout_ms=c.session_timeout_ms,
            max_poll_interval_ms=c.max_poll_interval_ms, strategy=c.strategy))

        async def requests() -> AsyncIterator[gpb.MemberRequest]:
            yield join
            if self._leaving:  # reconnected only to leave
                yield gpb.MemberRequest(leave=gpb.LeaveGroup())
                return
            while True:
                try:
                    item = await asyncio.wait_for(out.get(), self._heartbeat_s)
                except TimeoutError:
                    item = gpb.MemberRequest(heartbeat=gpb.Heartbeat(
                        ms_since_poll=self._ms_since_poll()))
                yield item
                if item.WhichOneof("kind") == "leave":
                    return

        call = self._groups.stub(address).Membership(requests())
        watcher = asyncio.ensure_future(self._watch_topics(topics, out))
        self._out = out
        try:
            async for response in call:
                kind = response.WhichOneof("kind")
                if kind == "joined":
                    joined = response.joined
                    if self.member_id and joined.member_id != self.member_id:
                        self._listener.lost()
                    self.member_id = joined.member_id
                    refused = frozenset(joined.refused_topics)
                    if refused and refused != self.refused_topics:
                        log.warning("group %s: not assigned topics this principal may not "
                                    "describe: %s", c.group_id, ", ".join(sorted(refused)))
                    self.refused_topics = refused
                    self._heartbeat_s = max(0.05, joined.heartbeat_interval_ms / 1000)
                elif kind == "assignment":
                    a = response.assignment
                    self.generation = a.generation
                    self._listener.assigned(
                        a.generation, {(tp.topic, p) for tp in a.partitions for p in tp.partitions})
        finally:
            self._out = None
            watcher.cancel()
            call.cancel()

    async def _watch_topics(self, topics: list[str],
                            out: asyncio.Queue[gpb.MemberRequest]) -> None:
        """Follows a pattern subscription: new matching topics join the subscription."""
        current = topics
        while True:
            await asyncio.sleep(TOPIC_CHECK_S)
            try:
                latest = await self._topics()
            except OdradekError:
                continue
            if latest and latest != current:
                current = latest
                out.put_nowait(gpb.MemberRequest(
                    subscription=gpb.UpdateSubscription(topics=latest)))
