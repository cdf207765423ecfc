"""One simulated broker: the real RaftHost, ClusterNode, ProducerIdManager and TopicAdmin,
wired to the simulated network instead of gRPC, on the simulation's event loop.

Each life of the broker is a ``Proc`` (loop.py): crash kills it (its tasks never run again,
its files lose, tear or corrupt what was not fsynced: tests/sim/real_storage.py), restart
builds new objects over the same directory, pause holds its work."""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odradek.broker import clock, leadership
from odradek.broker.cluster import ClusterNode, ClusterSettings
from odradek.broker.errors import BrokerError
from odradek.broker.groups.coordinator import CoordinatorSettings, GroupCoordinator
from odradek.broker.groups.lookup import OffsetLookup
from odradek.broker.peers.controller import MetadataReply, PeerUnavailable
from odradek.broker.producers.manager import ProducerIdManager
from odradek.broker.replication.host import RaftHost, SyncDone, run_syncs
from odradek.broker.replication.state_journal import StateJournal
from odradek.broker.topic_admin import TopicAdmin
from odradek.broker.topics.reads import OffsetSpec, list_offsets
from odradek.raft import Message
from odradek.records import Record, iter_records
from odradek.storage import LogConfig, PartitionLog
from tests.sim_broker.errors import RETRIABLE_CODES, make_error, status_code
from tests.sim_broker.loop import OWNER, Proc
from tests.sim_broker.net import CallTimeout

if TYPE_CHECKING:
    from tests.sim_broker.world import World

TICK_S = 0.05
OFFSETS_PARTITIONS = 2
REFUSED_AFTER_S = 0.002  # a broken stream seen, then a connection attempt refused


def address(broker_id: int) -> str:
    return f"b{broker_id}:9092"


def broker_of(addr: str) -> int:
    return int(addr.split(":")[0][1:])


class SimSyncer:
    """The broker's fsync thread in virtual time: each job's fsyncs happen a moment later
    (now and then a stall), while the groups take messages and proposals; a crash first
    loses what they wrote (the job never runs)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def submit(self, syncs: list[Callable[[], None]], done: SyncDone) -> None:
        rng = self.rng
        delay = rng.uniform(0.1, 1.5) if rng.random() < 0.05 else min(rng.expovariate(200), 0.05)
        asyncio.get_running_loop().call_later(delay, lambda: done(run_syncs(syncs)))


class SimBroker:
    def __init__(self, world: World, broker_id: int, data_dir: Path) -> None:
        self.world = world
        self.id = broker_id
        self.name = f"b{broker_id}"
        self.data_dir = data_dir
        self.life = 0
        self.proc: Proc | None = None
        self.host: RaftHost | None = None
        self.cluster: ClusterNode | None = None
        self.admin: TopicAdmin | None = None
        self.groups: GroupCoordinator | None = None
        self._last_received: dict[int, float] = {}
        self._last_sent: dict[int, float] = {}
        self._outbox: dict[int, list[tuple[str, Message]]] = {}

    @property
    def up(self) -> bool:
        return self.proc is not None and not self.proc.dead

    @property
    def paused(self) -> bool:
        return self.proc is not None and self.proc.paused

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.life += 1
        self.proc = Proc(f"{self.name}.{self.life}")
        self._last_received, self._last_sent, self._outbox = {}, {}, {}
        self.world.loop.run_as(self.proc, self._build)

    def _build(self) -> None:
        w = self.world
        settings = ClusterSettings(
            broker_id=self.id, host=self.name, port=9092, data_dir=self.data_dir,
            voters={v: address(v) for v in w.voters}, topic_defaults=w.topic_defaults,
            tick_interval_s=TICK_S, seed=w.rng.getrandbits(32))
        election_s = TICK_S * settings.election_ticks
        self.host = RaftHost(self.id, self.send, TICK_S,
                             alive=lambda peer: self.alive(peer, election_s),
                             on_tick=lambda: self.ping_idle(TICK_S),
                             syncer=SimSyncer(random.Random(w.rng.getrandbits(32))),
                             journal=StateJournal(self.data_dir))
        self.cluster = ClusterNode(settings, self.host,
                                   broker_alive=lambda peer: self.alive(peer, election_s),
                                   controller=SimControllerClient(self),
                                   open_workers=SimSyncer(random.Random(
                                       f"open-{w.seed}-{self.id}-{self.life}")))
        # Small blocks: brokers go back to the metadata log for ids often.
        self.cluster.producer_ids = ProducerIdManager(self.cluster, w.p.pid_block)
        self.admin = TopicAdmin(self.cluster, w.topic_defaults, 3)
        self.groups = GroupCoordinator(self.cluster, self.admin, CoordinatorSettings(
            offsets_partitions=OFFSETS_PARTITIONS, offsets_replication_factor=3))
        self.groups.lookup = OffsetLookup(self.cluster, SimOffsetsClient(self))
        self.host.start()
        self.cluster.start()
        self.groups.start()

    def crash(self, rng: random.Random) -> None:
        """kill -9 and power loss: nothing more runs; unsynced writes are damaged."""
        assert self.proc is not None and self.cluster is not None
        self.world.loop.kill(self.proc)
        self.world.net.reset(self.proc)
        for peer in self.world.brokers.values():
            if peer is not self and (self.name, peer.name) not in self.world.net.blocked:
                peer.connection_refused(self.id)
        logs: list[PartitionLog] = [p.log for p in self.cluster.partitions.values()]
        if self.cluster.meta_log is not None:
            logs.append(self.cluster.meta_log)
        for plog in logs:
            for segment in plog.segments:
                segment.close()
        if self.host is not None and self.host.journal is not None:
            self.host.journal.close()
        self.world.disk.lose_unsynced_under(self.data_dir, rng)
        self.host = self.cluster = self.admin = self.groups = None

    def connection_refused(self, peer: int) -> None:
        """Soon (a local round trip), this broker's transport finds its stream with
        ``peer`` broken and a new connection refused, as RaftTransport's probe does."""
        proc = self.proc
        if proc is None or proc.dead:
            return

        def report() -> None:
            if self.proc is proc and self.cluster is not None:
                leadership.broker_lost(self.cluster, peer)

        ctx = contextvars.copy_context()
        ctx.run(OWNER.set, proc)
        self.world.loop.call_later(REFUSED_AFTER_S, report, context=ctx)

    def pause(self) -> None:
        assert self.proc is not None
        self.world.loop.pause(self.proc)

    def resume(self) -> None:
        assert self.proc is not None
        self.world.loop.resume(self.proc)

    # ------------------------------------------------------------ raft transport
    def send(self, to_broker: int, group: str, msg: Message) -> None:
        """As RaftTransport: buffers, and everything for one peer of one loop turn leaves
        as one envelope, in order after the previous ones (a stream is FIFO)."""
        box = self._outbox.get(to_broker)
        if box is None:
            box = self._outbox[to_broker] = []
            asyncio.get_running_loop().call_soon(self._flush, to_broker)
        box.append((group, msg))

    def _flush(self, to_broker: int) -> None:
        messages = self._outbox.pop(to_broker, [])
        self._envelope(to_broker, messages)

    def _envelope(self, to_broker: int, messages: list[tuple[str, Message]]) -> None:
        peer = self.world.brokers.get(to_broker)
        self._last_sent[to_broker] = clock.monotonic()
        if peer is None or not peer.up:
            return  # no stream to a dead broker: dropped, as the transport does
        proc = peer.proc
        self.world.net.send(self.name, peer.name, proc,
                            lambda: peer.receive(self.id, messages), fifo=True)

    def receive(self, from_broker: int, messages: list[tuple[str, Message]]) -> None:
        self._last_received[from_broker] = clock.monotonic()
        host = self.host
        if host is None:
            return
        for group, msg in messages:
            host.deliver(group, msg)

    def ping_idle(self, interval_s: float) -> None:
        now = clock.monotonic()
        for peer in self.world.brokers:
            if peer != self.id and now - self._last_sent.get(peer, -1e9) >= interval_s:
                self._envelope(peer, [])

    def alive(self, peer: int, within_s: float) -> bool:
        return clock.monotonic() - self._last_received.get(peer, -1e9) <= within_s

    # ------------------------------------------------------------ calls to this broker
    async def call(self, src: str, handler: Callable[[SimBroker], Any], timeout_s: float) -> Any:
        """A request from ``src`` run on this broker (whatever life it is in on arrival)."""
        proc = self.proc

        async def run() -> Any:
            if self.proc is not proc:
                raise CallTimeout("stale")
            return await handler(self)

        return await self.world.net.call(src, self.name, proc, run, timeout_s)


class SimControllerClient:
    """ControllerClient over the simulated network, failing as the gRPC one does."""

    def __init__(self, broker: SimBroker) -> None:
        self.broker = broker

    async def _call(self, addr: str, handler: Callable[[SimBroker], Any], timeout_s: float) -> Any:
        target = self.broker.world.brokers.get(broker_of(addr))
        if target is None:
            raise PeerUnavailable(f"no broker at {addr}")
        try:
            return await target.call(self.broker.name, handler, timeout_s)
        except CallTimeout as exc:
            raise PeerUnavailable(str(exc)) from None
        except BrokerError as exc:
            if status_code(exc) in RETRIABLE_CODES:
                raise PeerUnavailable(exc.message) from None
            raise

    async def propose(self, address: str, command: bytes, timeout_s: float) -> int:
        async def handler(b: SimBroker) -> int:
            assert b.admin is not None
            return await b.admin.propose_as_controller(command)
        result: int = await self._call(address, handler, timeout_s)
        return result

    async def fetch_metadata(self, address: str, offset: int, max_wait_ms: int,
                             timeout_s: float) -> MetadataReply:
        async def handler(b: SimBroker) -> MetadataReply:
            assert b.cluster is not None
            data, next_offset, snapshot = await b.cluster.read_metadata(
                offset, max_wait_ms / 1000)
            return MetadataReply(data, next_offset, snapshot, b.cluster.controller_id)
        result: MetadataReply = await self._call(address, handler, timeout_s)
        return result


class SimOffsetsClient:
    """The coordinator's ListOffsets to a partition's leader, over the simulated network."""

    def __init__(self, broker: SimBroker) -> None:
        self.broker = broker

    async def list_offsets(self, address: str, topic: str, partition: int, spec: OffsetSpec,
                           timestamp_ms: int, timeout_s: float) -> int:
        leader = self.broker.world.brokers.get(broker_of(address))
        if leader is None:
            raise make_error("LEADER_NOT_AVAILABLE", f"no broker at {address}")

        async def ask(b: SimBroker) -> int:
            assert b.admin is not None
            return list_offsets(b.admin.leader_partition(topic, partition), spec,
                                timestamp_ms).offset

        try:
            offset: int = await leader.call(self.broker.name, ask, timeout_s)
        except CallTimeout as exc:
            raise make_error("LEADER_NOT_AVAILABLE", f"offsets of {topic}-{partition}: "
                             f"{exc}") from None
        return offset


def not_controller(b: SimBroker) -> BrokerError:
    """What a broker that is not the controller answers an admin change (the gRPC front
    end forwards it instead; the simulated admin client goes to the controller itself)."""
    controller = b.cluster.controller_id if b.cluster is not None else None
    meta = {"leader_id": str(controller)} if controller is not None else {}
    return make_error("NOT_CONTROLLER", f"broker {b.id} is not the controller", meta)


def sim_topic_defaults(segment_bytes: int) -> LogConfig:
    # Every write fsynced before it counts, as the real-storage Raft simulation runs, so
    # that power loss on a minority never loses an acknowledged write.
    return LogConfig(segment_bytes=segment_bytes, flush_messages=1)


def committed_records(partition: Any) -> list[Record]:
    """Every record below the replica's high watermark (a read stops at a segment's end,
    so read on until the high watermark)."""
    hw = partition.high_watermark
    offset = partition.log.log_start_offset
    out: list[Record] = []
    while offset < hw:
        result = partition.log.read(offset, 1 << 20, max_offset=hw)
        if result.next_offset <= offset:
            break
        out += iter_records(result.data)
        offset = result.next_offset
    return out
