"""The Kafka listener: length-prefixed frames over TCP, requests read as they come and
answered in order (Kafka's rule for one connection).

Kafka serves one request of a connection at a time, and clients count on it: a heartbeat
sent behind a JoinGroup must see the group the join made, not the rebalance before it.
So every request waits for those before it, except that consecutive Produce requests run
together (they start in order, and an append takes its place in the log before it first
waits), so that a producer's pipelined batches share Raft's group commit.

A frame with a negative or oversized length, or a request that does not parse, closes
that connection (what Kafka does); an API or version not served is answered
UNSUPPORTED_VERSION and the connection stays open. Nothing a client sends stops the
listener."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from odradek.broker.auth.access import Access, set_current_access
from odradek.broker.auth.guard import Guard
from odradek.broker.errors import BrokerError, ListenError
from odradek.broker.groups.classic import ClassicGroups
from odradek.broker.groups.coordinator import GroupCoordinator
from odradek.broker.kafka import codec, election_api, sasl
from odradek.broker.kafka import errors as err
from odradek.broker.kafka.acl_apis import AclApis
from odradek.broker.kafka.admin_apis import AdminApis
from odradek.broker.kafka.apis import DataApis
from odradek.broker.kafka.group_apis import GroupApis
from odradek.broker.kafka.sasl import Connection
from odradek.broker.kafka.tls import KafkaTLS, peer_certificate
from odradek.broker.kafka.user_apis import UserApis
from odradek.broker.listeners import Addresses
from odradek.broker.metrics.broker import BrokerMetrics
from odradek.broker.topic_admin import TopicAdmin
from odradek.security.tls import ServerTLS

log = logging.getLogger("odradek.broker.kafka")

# Kafka's socket.request.max.bytes default.
MAX_REQUEST_BYTES = 100 * 1024 * 1024
# Kafka's sasl.server.max.receive.size: a connection in the middle of a SASL exchange has
# not said who it is yet, and nothing it may send then (SCRAM messages) comes near this.
MAX_SASL_REQUEST_BYTES = 512 * 1024
# Requests of one connection served at once; past this the reader waits.
MAX_IN_FLIGHT = 32
_LENGTH = struct.Struct(">i")
PRODUCE = 0


def bind(host: str, port: int) -> socket.socket:
    """A listening socket for the Kafka listener (port 0: any free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except (OSError, OverflowError) as exc:
        sock.close()
        raise ListenError(f"cannot listen for Kafka clients on {host}:{port}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from exc
    sock.setblocking(False)
    return sock


class KafkaListener:
    def __init__(self, admin: TopicAdmin, coordinator: GroupCoordinator,
                 guard: Callable[[], Guard | None], metrics: BrokerMetrics | None = None,
                 max_request_bytes: int = MAX_REQUEST_BYTES,
                 tls: ServerTLS | None = None, addresses: Addresses | None = None,
                 classic: ClassicGroups | None = None) -> None:
        """`addresses`: how this listener names brokers (default: their own Kafka
        listeners); `classic`: the classic groups of another Kafka listener of the broker,
        shared (a group's members may come in through either)."""
        addresses = addresses or Addresses(lambda: admin.cluster.image, kafka=True)
        self.data = DataApis(admin, addresses, metrics)
        self.owns_classic = classic is None
        self.classic = classic or ClassicGroups(coordinator)
        self.groups = GroupApis(coordinator, self.classic, addresses)
        self.admin = AdminApis(admin, self.data.forwarder, addresses)
        self.acls = AclApis(admin.cluster)
        self.users = UserApis(admin.cluster)
        self._guard = guard
        self.metrics = metrics
        self.tls = KafkaTLS(tls) if tls is not None else None
        self.max_request_bytes = max_request_bytes
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, sock: socket.socket) -> None:
        """Serves on a socket bound before (bind): the port is registered in the cluster
        metadata before the broker is built."""
        self._server = await asyncio.start_server(
            self._serve, sock=sock, ssl=self.tls.context if self.tls is not None else None)
        self.port = sock.getsockname()[1]
        if self.owns_classic:
            self.classic.start()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self.owns_classic:
            await self.classic.stop()

    def _guard_now(self) -> Guard:
        guard = self._guard()
        if guard is None:
            raise RuntimeError("the Kafka listener serves only once the broker is built")
        return guard

    @staticmethod
    def _connection(writer: asyncio.StreamWriter) -> Connection:
        peer = writer.get_extra_info("peername")
        return Connection(peer[0] if isinstance(peer, tuple) else "",
                          peer_certificate(writer.get_extra_info("ssl_object")))

    async def _serve(self, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        self._connections.add(me)
        if self.metrics is not None:
            self.metrics.kafka_connections.inc()
        answers: asyncio.Queue[asyncio.Task[bytes | None] | None] = asyncio.Queue(MAX_IN_FLIGHT)
        conn = self._connection(writer)
        sender = asyncio.create_task(self._send(answers, writer, conn))
        in_flight: set[asyncio.Task[bytes | None]] = set()
        exclusive: asyncio.Task[bytes | None] | None = None  # the last request not a Produce
        try:
            while not sender.done() and not conn.close:
                frame = await self._read_frame(reader, conn)
                if frame is None:
                    break
                try:
                    request = codec.decode_request(frame)
                except codec.MalformedRequest as exc:
                    log.info("closing a Kafka connection: %s", exc)
                    break
                produce = request.header.api_key == PRODUCE and request.body is not None
                after = ([exclusive] if exclusive is not None else []) if produce \
                    else list(in_flight)
                task = asyncio.create_task(self._answer(request, conn, after))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                if not produce:
                    exclusive = task
                await answers.put(task)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away mid-request: answer nothing, close below
        except asyncio.CancelledError:
            # The broker stops. Ended rather than cancelled: asyncio logs a cancelled
            # connection task as an ERROR with a traceback, at every clean stop.
            pass
        finally:
            # The connection is over (the client left, sent what closes it, or the broker
            # stops): answers still pending have nobody to go to, and a JoinGroup or a
            # Fetch may be waiting for a long time.
            pending = [*in_flight, sender]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            guard = self._guard()
            if guard is not None:
                sasl.abandon(conn, guard)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._connections.discard(me)

    async def _read_frame(self, reader: asyncio.StreamReader,
                          conn: Connection) -> bytes | None:
        try:
            head = await reader.readexactly(4)
        except asyncio.IncompleteReadError:
            return None  # the client closed between requests
        (length,) = _LENGTH.unpack(head)
        limit = self.max_request_bytes
        if conn.mechanism is not None and conn.token is None:
            limit = min(limit, MAX_SASL_REQUEST_BYTES)
        if length < 0 or length > limit:
            log.info("closing a Kafka connection: a request of %d bytes (limit %d%s)", length,
                     limit, " during SASL authentication" if limit < self.max_request_bytes
                     else "")
            return None
        return await reader.readexactly(length)

    async def _send(self, answers: asyncio.Queue[asyncio.Task[bytes | None] | None],
                    writer: asyncio.StreamWriter, conn: Connection) -> None:
        while True:
            task = await answers.get()
            if task is None:
                return
            frame = await task
            if frame is not None:
                writer.write(frame)
                await writer.drain()
            if conn.close:  # after the refusal went out; the reader then sees the end
                writer.close()
                return

    async def _answer(self, request: codec.Request, conn: Connection,
                      after: list[asyncio.Task[bytes | None]]) -> bytes | None:
        pending = [t for t in after if not t.done()]
        if pending:
            await asyncio.wait(pending)
        header = request.header
        if conn.close:
            return None  # the connection is closing: nothing after its failed login
        if request.body is None:
            return self._unsupported(header)
        guard = self._guard_now()
        try:
            if header.api_key == codec.SASL_HANDSHAKE:
                return codec.encode_response(header, sasl.handshake(
                    header.api_version, request.body, conn))
            if header.api_key == sasl.SASL_AUTHENTICATE:
                return codec.encode_response(header, sasl.authenticate(
                    header.api_version, request.body, conn, guard))
            # Per request, so that ACL changes, a deleted user or a new password apply
            # to connections already open.
            access = guard.identify(conn.token, conn.certificate, conn.host)
        except BrokerError as exc:  # the session ended: the client must log in again
            log.info("closing a Kafka connection from %s: %s", conn.host, exc.message)
            conn.close = True
            return None
        set_current_access(access)
        started = time.perf_counter()
        try:
            body = await self._dispatch(header, request.body, access)
            frame = None if body is None else codec.encode_response(header, body)
        except Exception:
            # Handlers answer domain errors in their responses; this is a bug, and the
            # client gets a well-formed refusal rather than a dead connection.
            log.exception("Kafka API %d v%d failed", header.api_key, header.api_version)
            body = codec.error_response(header.api_key, header.api_version,
                                        err.UNKNOWN_SERVER_ERROR)
            frame = codec.encode_response(header, body)
        if self.metrics is not None:
            api = codec.api_name(header.api_key)
            self.metrics.kafka_requests.labels(api).inc()
            self.metrics.kafka_duration.labels(api).observe(time.perf_counter() - started)
            if body is not None:
                for name in codec.error_names(body):
                    self.metrics.kafka_errors.labels(api, name).inc()
        return frame

    def _unsupported(self, header: codec.Header) -> bytes:
        if header.api_key == codec.API_VERSIONS:
            # Answered in v0, which every client reads, with the versions served.
            v0 = codec.Header(header.api_key, 0, header.correlation_id, header.client_id)
            return codec.encode_response(v0, self.data.api_versions(0, err.UNSUPPORTED_VERSION))
        try:
            body = codec.error_response(header.api_key, header.api_version,
                                        err.UNSUPPORTED_VERSION)
        except Exception:  # an API key or version kio has no schema of
            return codec.encode_bare_error(header, err.UNSUPPORTED_VERSION)
        return codec.encode_response(header, body)

    async def _dispatch(self, header: codec.Header, body: Any, access: Access) -> Any:
        v = header.api_version
        data, groups = self.data, self.groups
        match header.api_key:
            case 0:
                response = await data.produce(v, body, access)
                return None if body.acks == 0 else response
            case 1:
                return await data.fetch(v, body, access)
            case 2:
                return data.list_offsets(v, body, access)
            case 3:
                return data.metadata(v, body, access)
            case 8:
                return await groups.offset_commit(v, body, access)
            case 9:
                return await groups.offset_fetch(v, body, access)
            case 10:
                return await groups.find_coordinator(v, body, access)
            case 11:
                return await groups.join_group(v, body, access, header.client_id or "")
            case 12:
                return groups.heartbeat(v, body, access)
            case 13:
                return groups.leave_group(v, body, access)
            case 14:
                return await groups.sync_group(v, body, access)
            case 15:
                return groups.describe_groups(v, body, access)
            case 16:
                return groups.list_groups(v, body, access)
            case 18:
                return data.api_versions(v)
            case 19:
                return await data.create_topics(v, body, access)
            case 20:
                return await data.delete_topics(v, body, access)
            case 21:
                return await self.admin.delete_records(v, body, access)
            case 22:
                return await data.init_producer_id(v, body, access)
            case 23:
                return data.offset_for_leader_epoch(v, body, access)
            case 29:
                return self.acls.describe_acls(v, body, access)
            case 30:
                return await self.acls.create_acls(v, body, access)
            case 31:
                return await self.acls.delete_acls(v, body, access)
            case 32:
                return self.admin.describe_configs(v, body, access)
            case 33:
                return await self.admin.alter_configs(v, body, access)
            case 37:
                return await self.admin.create_partitions(v, body, access)
            case 43:
                return await election_api.elect(self.admin.admin, self.admin.forwarder, v,
                                                body, access)
            case 44:
                return await self.admin.incremental_alter_configs(v, body, access)
            case 42:
                return await groups.delete_groups(v, body, access)
            case 47:
                return await groups.offset_delete(v, body, access)
            case 50:
                return self.users.describe(v, body, access)
            case 51:
                return await self.users.alter(v, body, access)
            case 60:
                return self.admin.describe_cluster(v, body, access)
            case 68:
                return await groups.consumer_group_heartbeat(v, body, access,
                                                             header.client_id or "")
        return codec.error_response(header.api_key, v, err.UNSUPPORTED_VERSION)
