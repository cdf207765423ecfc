"""Raft transport between brokers: one bidirectional gRPC stream per broker pair.

A broker hosts thousands of Raft groups (one per partition plus ``__meta``), so messages are
multiplexed: every group's traffic between two brokers shares one ``Raft.Exchange`` stream.
The broker with the LOWER id dials the higher one; the higher one serves the stream through
``RaftServicer`` and answers over the same stream. ``send`` only buffers; everything buffered
for one peer in one event-loop iteration leaves as ONE envelope (heartbeats of all groups
between two brokers travel as one gRPC message per tick).

Raft tolerates loss, so the transport never retries a message: while a peer is disconnected
its messages are dropped (and counted), and a peer that cannot keep up loses its oldest
queued envelopes once ``max_pending_bytes`` are pending. Nothing here blocks the event loop
and no thread is started.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import grpc

from odradek.broker import clock
from odradek.broker.peers.raft_codec import (
    encode_envelope,
    estimate_size,
    from_proto,
    serialize_envelope,
    to_proto,
)
from odradek.broker.peers.raft_service import EXCHANGE
from odradek.raft.types import Message
from odradek.security.tls import ClientTLS, TLSConfigError, open_channel
from odradek.v1 import raft_pb2 as pb
from odradek.v1 import raft_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 33 * 1024 * 1024
"""gRPC max send/receive message size on both ends of a Raft stream, and so the largest
request the broker's server takes at all (grpc/limits.py): one entry is at most what one
append takes (32 MiB, replication/replica.py MAX_APPEND_BYTES), plus room for the
envelope. Any more would let every client send that much before its call is refused."""

MAX_PENDING_BYTES = 64 * 1024 * 1024
"""Default bound of the envelopes queued for one peer; the oldest are dropped beyond it."""

MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
"""One flush is split into envelopes of about this size (well under MAX_MESSAGE_BYTES)."""

BACKOFF_INITIAL = 0.05
BACKOFF_MAX = 1.0
HANDSHAKE_TIMEOUT = 5.0
PROBE_TIMEOUT = 0.5
"""How long the connection attempt after a broken stream may take. Only a refusal counts
as the peer's death; a probe that times out proves nothing (Raft's timeout decides)."""
PROBE_ATTEMPTS = 5
PROBE_FIRST_PAUSE = 0.01
"""A broken stream's peer is probed up to PROBE_ATTEMPTS times, the pauses between
attempts doubling from this (about 150 ms in all)."""

CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # The transport does its own backoff; keep gRPC's from stacking on top of it.
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.use_local_subchannel_pool", 1),
    # Detect a half-open connection (peer host gone) in about 15 s.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
"""Options of the channels the transport dials (``channel_options`` are appended)."""

SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_ping_strikes", 0),
]
"""Options the broker should give the grpc.aio server that hosts ``RaftServicer``."""

Resolve = Callable[[int], str | None]
Deliver = Callable[[str, Message], None]
PeerLost = Callable[[int], None]


@dataclass(slots=True)
class PeerStats:
    """Counters of one peer (a copy: ``RaftTransport.stats()`` returns fresh ones)."""

    sent_envelopes: int = 0
    sent_messages: int = 0
    received_envelopes: int = 0
    received_messages: int = 0
    dropped_envelopes: int = 0
    dropped_messages: int = 0
    undecodable_messages: int = 0
    streams: int = 0
    """Streams established with this peer (1 + reconnections)."""
    pending_bytes: int = 0
    """Estimated size of the envelopes queued for this peer now."""
    connected: bool = False


class _Session:
    """One established stream with a peer: the queue of envelopes waiting to be written."""

    __slots__ = ("closed", "finished", "queue", "pending_bytes", "wakeup")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.closed: asyncio.Future[None] = loop.create_future()
        """Resolved to ask the session to end."""
        self.finished: asyncio.Future[None] = loop.create_future()
        """Resolved once the session has ended and released its stream."""
        self.queue: deque[tuple[bytes, int, int]] = deque()  # envelope, size, messages
        self.pending_bytes = 0
        self.wakeup = asyncio.Event()

    def close(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Peer:
    __slots__ = ("id", "stats", "session", "buffer", "flush_scheduled", "dialer",
                 "last_received", "last_sent")

    def __init__(self, peer_id: int) -> None:
        self.id = peer_id
        self.last_received = 0.0
        self.last_sent = 0.0
        self.stats = PeerStats()
        self.session: _Session | None = None
        self.buffer: list[tuple[str, Message]] = []
        self.flush_scheduled = False
        self.dialer: asyncio.Task[None] | None = None


class RaftTransport:
    """Carries Raft messages of all groups between this broker and its peers.

    ``resolve(broker_id)`` gives a peer's "host:port" (or None while unknown); it is asked
    again before every connection attempt. ``deliver(group, message)`` is called on the
    event loop for every message received; it must not block.

    ``peer_lost(broker_id)`` is called when a stream with a peer broke (reset, or ended by
    the peer) and a new connection to the peer's address is refused at once: its process
    is gone, not merely slow or cut off (that is left to Raft's timeouts), and not merely
    restarting its transport (its listener still accepts).
    """

    def __init__(
        self,
        broker_id: int,
        resolve: Resolve,
        deliver: Deliver,
        channel_options: Iterable[tuple[str, Any]] | None = None,
        *,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        max_envelope_bytes: int = MAX_ENVELOPE_BYTES,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        tls: ClientTLS | None = None,
        peer_lost: PeerLost | None = None,
        probe_timeout: float = PROBE_TIMEOUT,
    ) -> None:
        self.broker_id = broker_id
        self._peer_lost = peer_lost
        self._probe_timeout = probe_timeout
        self._probes: set[asyncio.Task[None]] = set()
        self._resolve = resolve
        self._deliver = deliver
        self._channel_options = [*CHANNEL_OPTIONS, *(channel_options or ())]
        # Mutual TLS to peers; the files are read again on every connection attempt.
        self._tls = tls
        self._max_pending = max_pending_bytes
        self._max_envelope = max_envelope_bytes
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._peers: dict[int, _Peer] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._stopped = False
        self._servicer = RaftServicer(self)

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Starts dialing the known higher-id peers; call on the event loop."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._started = True
        for peer in self._peers.values():
            self._ensure_dialer(peer)

    async def stop(self) -> None:
        """Closes every stream and stops dialing; buffered messages are dropped."""
        self._stopped = True
        waits: list[asyncio.Future[Any]] = []
        for probe in self._probes:
            probe.cancel()
            waits.append(probe)
        for peer in self._peers.values():
            if peer.dialer is not None:
                peer.dialer.cancel()
                waits.append(peer.dialer)
                peer.dialer = None
            if peer.session is not None:
                peer.session.close()
                waits.append(peer.session.finished)
        if waits:
            await asyncio.wait(waits, timeout=HANDSHAKE_TIMEOUT)

    def servicer(self) -> RaftServicer:
        """The servicer to add to the broker's grpc.aio server (add_RaftServicer_to_server)."""
        return self._servicer

    # ---- peers -----------------------------------------------------------------------

    def add_peer(self, broker_id: int) -> None:
        """Declares a broker of the cluster. Higher ids are dialed (from start() on) so that
        they can reach this broker even before it has anything to send them; lower ids dial
        us. ``send`` adds peers implicitly."""
        self._peer(broker_id)

    def remove_peer(self, broker_id: int) -> None:
        """Forgets a broker (decommissioned): stops dialing it and closes its stream."""
        peer = self._peers.pop(broker_id, None)
        if peer is None:
            return
        if peer.dialer is not None:
            peer.dialer.cancel()
        if peer.session is not None:
            peer.session.close()

    def connected(self, peer: int) -> bool:
        p = self._peers.get(peer)
        return p is not None and p.session is not None

    def stats(self) -> dict[int, PeerStats]:
        out = {}
        for pid, p in self._peers.items():
            s = p.session
            out[pid] = replace(
                p.stats, pending_bytes=s.pending_bytes if s else 0, connected=s is not None
            )
        return out

    def _peer(self, broker_id: int) -> _Peer:
        peer = self._peers.get(broker_id)
        if peer is None:
            if broker_id == self.broker_id:
                raise ValueError(f"broker {broker_id} is this broker")
            peer = self._peers[broker_id] = _Peer(broker_id)
            self._ensure_dialer(peer)
        return peer

    def _ensure_dialer(self, peer: _Peer) -> None:
        if (
            self._started
            and not self._stopped
            and peer.id > self.broker_id
            and peer.dialer is None
            and self._loop is not None
        ):
            peer.dialer = self._loop.create_task(
                self._dial_loop(peer), name=f"raft-dial-{self.broker_id}->{peer.id}"
            )

    # ---- sending ---------------------------------------------------------------------

    def send(self, to_broker: int, group: str, msg: Message) -> None:
        """Queues ``msg`` of ``group`` for ``to_broker``; never blocks, never raises on a
        dead peer (the message is dropped and counted when the peer is not connected)."""
        peer = self._peer(to_broker)
        peer.buffer.append((group, msg))
        if not peer.flush_scheduled:
            peer.flush_scheduled = True
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self._flush, peer)

    def _flush(self, peer: _Peer) -> None:
        peer.flush_scheduled = False
        buffered, peer.buffer = peer.buffer, []
        if not buffered:
            return
        session = peer.session
        st = peer.stats
        if session is None or self._stopped:
            st.dropped_envelopes += 1
            st.dropped_messages += len(buffered)
            return
        messages: list[bytes] = []
        size = 0
        for group, msg in buffered:
            n = estimate_size(msg)
            encoded = to_proto(group, msg).SerializeToString()
            if n > self._max_envelope and len(encoded) + 64 > MAX_MESSAGE_BYTES:
                log.error(
                    "raft message of group %s to broker %d is %d bytes, over the %d limit; "
                    "dropped", group, peer.id, len(encoded), MAX_MESSAGE_BYTES,
                )
                st.dropped_messages += 1
                continue
            if messages and size + n > self._max_envelope:
                self._enqueue(peer, session, encode_envelope(self.broker_id, peer.id, messages),
                              size, len(messages))
                messages = []
                size = 0
            messages.append(encoded)
            size += n
        if messages:
            self._enqueue(peer, session, encode_envelope(self.broker_id, peer.id, messages),
                          size, len(messages))

    def ping_idle(self, interval_s: float) -> None:
        """Sends an empty envelope to each connected peer that was sent nothing for
        interval_s: one liveness signal per broker pair, whatever the number of groups."""
        now = clock.monotonic()
        for peer in self._peers.values():
            session = peer.session
            if session is not None and not self._stopped and now - peer.last_sent >= interval_s:
                self._enqueue(peer, session, encode_envelope(self.broker_id, peer.id, ()), 16, 0)

    def alive(self, peer_id: int, within_s: float) -> bool:
        """Whether anything arrived from the peer within the last within_s seconds."""
        peer = self._peers.get(peer_id)
        return peer is not None and clock.monotonic() - peer.last_received <= within_s

    def _enqueue(self, peer: _Peer, session: _Session, envelope: bytes, size: int,
                 count: int) -> None:
        peer.last_sent = clock.monotonic()
        session.queue.append((envelope, size, count))
        session.pending_bytes += size
        st = peer.stats
        while session.pending_bytes > self._max_pending and len(session.queue) > 1:
            _, dsize, dcount = session.queue.popleft()
            session.pending_bytes -= dsize
            st.dropped_envelopes += 1
            st.dropped_messages += dcount
        session.wakeup.set()

    # ---- streams ---------------------------------------------------------------------

    async def _run_session(
        self,
        peer: _Peer,
        read: Callable[[], Awaitable[Any]],
        write: Callable[[bytes | pb.RaftEnvelope], Awaitable[None]],
    ) -> None:
        """Pumps an established stream until it breaks, is replaced, or the transport stops."""
        assert self._loop is not None
        session = _Session(self._loop)
        old = peer.session
        if old is not None:
            # The peer dialed again: its previous stream is dead or dying. The newest wins.
            old.close()
        peer.session = session
        peer.stats.streams += 1
        log.info("raft stream %d<->%d established", self.broker_id, peer.id)
        reader = asyncio.ensure_future(self._read_loop(peer, read))
        writer = asyncio.ensure_future(self._write_loop(peer, session, write))
        try:
            done, _ = await asyncio.wait(
                {reader, writer, session.closed}, return_when=asyncio.FIRST_COMPLETED
            )
            for t in done:
                if t is not session.closed and not t.cancelled() and t.exception() is not None:
                    log.info(
                        "raft stream %d<->%d broke: %s", self.broker_id, peer.id, t.exception()
                    )
        finally:
            # Release the peer before awaiting anything: gRPC may cancel this task again
            # (a server handler is cancelled when its RPC is), and the peer must never be
            # left pointing at a dead session.
            session.close()
            if peer.session is session:
                peer.session = None
                # Neither replaced by a newer stream nor closed by us: the stream broke.
                if not self._stopped and self._peers.get(peer.id) is peer:
                    self._start_probe(peer)
            st = peer.stats
            for _, _, count in session.queue:
                st.dropped_envelopes += 1
                st.dropped_messages += count
            session.queue.clear()
            session.pending_bytes = 0
            session.finished.set_result(None)
            log.info("raft stream %d<->%d closed", self.broker_id, peer.id)
            reader.cancel()
            writer.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)

    def _start_probe(self, peer: _Peer) -> None:
        if self._peer_lost is None or self._loop is None:
            return
        task = self._loop.create_task(self._probe(peer), name=f"raft-probe-{peer.id}")
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _probe(self, peer: _Peer) -> None:
        """After a broken stream: does the peer's address still take connections? A
        process killed this instant may still accept for a few milliseconds (the kernel
        closes its sockets one by one as it exits), so a few attempts, more and more
        apart, must all be accepted before the peer counts as alive."""
        address = self._resolve(peer.id)
        if address is None:
            return
        host, _, port = address.rpartition(":")
        pause = PROBE_FIRST_PAUSE
        for _ in range(PROBE_ATTEMPTS):
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(host.strip("[]"), int(port)), self._probe_timeout)
            except ConnectionRefusedError:
                break
            except (OSError, ValueError, TimeoutError):
                return  # unreachable or unknown: no proof of anything
            writer.close()
            await asyncio.sleep(pause)
            pause *= 2
            if peer.session is not None or self._stopped:
                return  # a new stream: the peer is there
        else:
            return  # it keeps accepting: alive (it restarted its transport, say)
        if peer.session is None and not self._stopped and self._peer_lost is not None:
            log.info("raft: broker %d refuses connections after its stream broke: lost",
                     peer.id)
            try:
                self._peer_lost(peer.id)
            except Exception:
                log.exception("reporting broker %d lost failed", peer.id)

    async def _read_loop(self, peer: _Peer, read: Callable[[], Awaitable[Any]]) -> None:
        while True:
            env = await read()
            if env is grpc.aio.EOF:
                return
            self._receive(peer, env)

    def _receive(self, peer: _Peer, env: pb.RaftEnvelope) -> None:
        peer.last_received = clock.monotonic()
        st = peer.stats
        st.received_envelopes += 1
        st.received_messages += len(env.messages)
        for pm in env.messages:
            try:
                group, msg = from_proto(pm)
            except ValueError as e:
                st.undecodable_messages += 1
                log.warning("undecodable raft message from broker %d: %s", peer.id, e)
                continue
            try:
                self._deliver(group, msg)
            except Exception:
                log.exception("delivering a raft message of group %s failed", group)

    async def _write_loop(
        self,
        peer: _Peer,
        session: _Session,
        write: Callable[[bytes | pb.RaftEnvelope], Awaitable[None]],
    ) -> None:
        st = peer.stats
        while True:
            while not session.queue:
                session.wakeup.clear()
                await session.wakeup.wait()
            env, size, count = session.queue.popleft()
            session.pending_bytes -= size
            try:
                await write(env)
            except BaseException:
                st.dropped_envelopes += 1
                st.dropped_messages += count
                raise
            st.sent_envelopes += 1
            st.sent_messages += count

    async def _dial_loop(self, peer: _Peer) -> None:
        backoff = self._backoff_initial
        while not self._stopped:
            address = self._resolve(peer.id)
            if address is not None:
                established = await self._dial_once(peer, address)
                if established:
                    backoff = self._backoff_initial
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self._backoff_max)

    async def _dial_once(self, peer: _Peer, address: str) -> bool:
        """One connection attempt; returns whether the stream was established."""
        try:
            channel = open_channel(address, self._tls, self._channel_options)
        except TLSConfigError as exc:
            log.warning("raft: cannot dial %s: %s", address, exc)
            return False
        established = False
        try:
            call = channel.stream_stream(
                EXCHANGE, request_serializer=serialize_envelope,
                response_deserializer=pb.RaftEnvelope.FromString)()
            try:
                await call.write(pb.RaftEnvelope(from_broker=self.broker_id, to_broker=peer.id))
                hello = await asyncio.wait_for(call.read(), HANDSHAKE_TIMEOUT)
                if hello is grpc.aio.EOF:
                    return False
                if hello.from_broker != peer.id or hello.to_broker != self.broker_id:
                    log.warning(
                        "raft: %s answered as broker %d (to %d), expected broker %d",
                        address, hello.from_broker, hello.to_broker, peer.id,
                    )
                    return False
                established = True
                self._receive_opening(peer, hello)
                await self._run_session(peer, call.read, call.write)
            except grpc.aio.AioRpcError as e:
                if e.code() in (grpc.StatusCode.INVALID_ARGUMENT,
                                grpc.StatusCode.FAILED_PRECONDITION):
                    log.warning("raft: broker %d refused the stream: %s", peer.id, e.details())
                else:
                    log.debug("raft: dialing broker %d at %s: %s", peer.id, address, e.code())
            except TimeoutError:
                log.warning("raft: broker %d at %s did not answer the opening", peer.id, address)
            except Exception:
                log.exception("raft: stream with broker %d at %s failed", peer.id, address)
            finally:
                call.cancel()
        finally:
            await channel.close(grace=None)
        return established

    def _receive_opening(self, peer: _Peer, env: pb.RaftEnvelope) -> None:
        if env.messages:
            self._receive(peer, env)

    # ---- the served side -------------------------------------------------------------

    async def _serve(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self._stopped or not self._started:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "raft transport is not running")
        try:
            hello = await asyncio.wait_for(context.read(), HANDSHAKE_TIMEOUT)
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no opening envelope")
        if hello is grpc.aio.EOF:
            return
        src = hello.from_broker
        if src >= self.broker_id:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"broker {self.broker_id} refuses a raft stream from broker {src}: "
                f"only a broker with a lower id than {self.broker_id} may dial it",
            )
        if hello.to_broker != self.broker_id:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"this is broker {self.broker_id}, not broker {hello.to_broker}",
            )
        peer = self._peer(src)
        self._servicer.accepted[src] = self._servicer.accepted.get(src, 0) + 1
        await context.write(pb.RaftEnvelope(from_broker=self.broker_id, to_broker=src))
        self._receive_opening(peer, hello)
        await self._run_session(peer, context.read, context.write)


class RaftServicer(pb_grpc.RaftServicer):
    """Serves ``Raft.Exchange`` for a RaftTransport; get it from ``transport.servicer()``."""

    def __init__(self, transport: RaftTransport) -> None:
        self._transport = transport
        self.accepted: dict[int, int] = {}
        """Streams accepted per dialing broker (for tests and metrics)."""

    async def Exchange(  # noqa: N802 (the gRPC method name)
        self,
        request_iterator: AsyncIterator[pb.RaftEnvelope],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        await self._transport._serve(context)
