"""A broker as a member of the cluster: the metadata Raft group and its image, and the
partition replicas this broker hosts, kept in line with the image.

The metadata log (group "__meta") runs on a fixed voter set. Its leader is the controller:
admin requests are validated and placed there (odradek.broker.metadata holds the rules as
plain functions) and become commands in the log. Every broker applies the committed
commands to its in-memory image and then opens, closes or reconfigures its replicas."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from odradek.broker import clock, in_sync, leadership, regressions
from odradek.broker.errors import BrokerError, Reason
from odradek.broker.follow_controller import ControllerMoved, unless_moved
from odradek.broker.leader_reports import LeaderReporter
from odradek.broker.meta_listener import MetaListener
from odradek.broker.metadata.commands import (
    Command,
    Endpoints,
    RegisterBroker,
    decode_command,
)
from odradek.broker.metadata.image import (
    MetadataImage,
    apply,
    decode_snapshot,
    encode_snapshot,
    registered_as,
)
from odradek.broker.names import partition_group
from odradek.broker.new_replicas import NewReplicas
from odradek.broker.peers.channels import ChannelPool
from odradek.broker.peers.controller import ControllerClient, GrpcControllerClient, PeerUnavailable
from odradek.broker.producers.manager import ProducerIdManager
from odradek.broker.reassigner import Reassigner
from odradek.broker.replica_files import (
    JOB_SIZE,
    OpenedFiles,
    OpenRequest,
    ReplicaOpener,
    open_files,
)
from odradek.broker.replication.host import RaftGroup, RaftHost, Syncer
from odradek.broker.replication.log_storage import PartitionRaftStorage
from odradek.broker.replication.meta_storage import MetadataRaftStorage
from odradek.broker.replication.producer_state import DEFAULT_EXPIRATION_MS
from odradek.broker.replication.repair import CorruptionRepair
from odradek.broker.replication.replica import ReplicatedPartition
from odradek.broker.topic_defaults import effective_defaults
from odradek.raft import (
    EntryKind,
    NotLeader,
    RaftConfig,
    RaftNode,
    Ready,
)
from odradek.records import encode_batch, iter_records
from odradek.security.hosts import host_port
from odradek.security.tls import ClientTLS
from odradek.storage import LogConfig, PartitionLog

log = logging.getLogger("odradek.broker")

META_GROUP = "__meta"
PROPOSE_TIMEOUT_S = 15.0


@dataclass
class ClusterSettings:
    broker_id: int
    host: str
    port: int
    data_dir: Path
    # Metadata voters: broker id -> "host:port" of its listener.
    voters: dict[int, str]
    rack: str | None = None
    kafka_port: int = 0  # registered for the Kafka listener's Metadata answers; 0: none
    endpoints: Endpoints = ()  # further listeners' advertised addresses, sorted by name
    cluster_id: str = "odradek"
    topic_defaults: LogConfig = field(default_factory=LogConfig)
    tick_interval_s: float = 0.05
    election_ticks: int = 10
    heartbeat_ticks: int = 2
    # Snapshot the metadata image (and drop the log below it) every this many commands.
    metadata_snapshot_every: int = 1000
    # Idempotent producers idle this long are forgotten by the partitions (Kafka's
    # producer.id.expiration.ms).
    producer_id_expiration_ms: int = DEFAULT_EXPIRATION_MS
    # Seeds the Raft election timeouts of this broker's groups (the simulation replays a
    # seed); None: seeded from the system.
    seed: int | None = None
    # Background CRC scrub of the segments a clean start trusted (repair.py); 0: none.
    scrub_bytes_per_s: int = 0
    auto_leader_rebalance: bool = True  # Kafka's auto.leader.rebalance.enable


class ClusterNode:
    def __init__(self, settings: ClusterSettings, host: RaftHost,
                 peers_changed: Callable[[], None] = lambda: None,
                 broker_alive: Callable[[int], bool] = lambda _: False,
                 tls: ClientTLS | None = None, controller: ControllerClient | None = None,
                 open_workers: Syncer | None = None) -> None:
        self.settings = settings
        self.id = settings.broker_id
        self.cluster_id = settings.cluster_id
        self.host = host
        self.image = MetadataImage()
        self.partitions: dict[tuple[str, int], ReplicatedPartition] = {}
        self._topic_ids: dict[tuple[str, int], str] = {}
        # (offset, term it was proposed in here or None, future) of each proposer waiting.
        self._applied_waiters: list[tuple[int, int | None, asyncio.Future[None]]] = []
        self._committed = (-1, 0)  # (index, term) of the last metadata entry committed
        # Commands whose application a proposer waits to see (propose_tracked): the image
        # right after each was applied here.
        self._tracked: dict[Command, MetadataImage | None] = {}
        self._tracking: dict[Command, int] = {}  # how many proposers wait for each
        self._requests = 0
        self._image_changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._peers_changed = peers_changed
        self.broker_alive = broker_alive
        # Channels to the other brokers, for whatever goes over gRPC to them.
        self.channels = ChannelPool(tls)
        # Controller calls go through this seam (gRPC here, in memory in the simulation).
        self.controller: ControllerClient = controller or GrpcControllerClient(self.channels)
        self._rng = random.Random(settings.seed)
        self.reassigner = Reassigner(self, self._topic_ids, self._spawn)
        self.voter = self.id in settings.voters
        # Given to every partition log this node opens: times its fsyncs (metrics).
        self.flush_observer: Callable[[float], None] | None = None
        # Given every partition log this node opens (the broker's housekeeper takes it).
        self.adopt_log: Callable[[PartitionLog], None] = lambda _: None
        self._observed_controller: int | None = None
        self._next_pass: asyncio.Handle | None = None  # a pass with opens left (inline)
        self._stopped = False
        self.opener = None if open_workers is None else ReplicaOpener(  # None: inline
            open_workers, clock.time_ms, host.syncer is not None, self._register_opened,
            self.reconcile)
        # Cuts and re-replicates a replica whose log holds a corrupt batch.
        self.repair = CorruptionRepair(
            host, self._partition_node, broker_alive,
            settings.tick_interval_s * settings.election_ticks, self._spawn,
            settings.scrub_bytes_per_s)
        self.producer_ids = ProducerIdManager(self)
        self.leader_reports = LeaderReporter(self.id, self.propose)
        self.new_replicas = NewReplicas(host, settings.data_dir)
        self.meta_log: PartitionLog | None = None
        self.meta_node: RaftNode | None = None
        self.meta_storage: MetadataRaftStorage | None = None
        if self.voter:
            # Small and precious: every entry fsynced before it counts, all of it CRC-checked
            # at every start (cut there, never applied). Non-voters use FetchMetadata.
            self.meta_log = PartitionLog.open(settings.data_dir / META_GROUP,
                                              LogConfig(retention_ms=-1, flush_messages=1),
                                              clock=clock.time_ms, trust_sealed=False)
            self.meta_storage = MetadataRaftStorage(self.meta_log, sorted(settings.voters))
            snapshot = self.meta_storage.snapshot()
            if snapshot.data:
                self.image = decode_snapshot(snapshot.data)
            # Cut at load (corrupt): no elections until it holds its commit again (repair.py).
            self.meta_node = RaftNode(self._raft_config(True, self.meta_storage.lost_commit),
                                      self.meta_storage, self._rng)
            self.host.add(RaftGroup(META_GROUP, self.meta_node, self.meta_storage,
                                    MetaListener(self)))

    def _raft_config(self, entries: bool, lost_commit: int) -> RaftConfig:
        s = self.settings
        return RaftConfig(self.id, election_ticks=s.election_ticks, lost_commit=lost_commit,
                          heartbeat_ticks=s.heartbeat_ticks, return_committed_entries=entries)

    # ---------------------------------------------------------------- addresses
    def address_of(self, broker_id: int | None) -> str | None:
        if broker_id is None:
            return None
        info = self.image.brokers.get(broker_id)
        if info is not None:
            return host_port(info.host, info.port)
        return self.settings.voters.get(broker_id)

    @property
    def controller_id(self) -> int | None:
        if self.meta_node is None:
            return self._observed_controller
        return self.meta_node.leader

    def is_controller(self) -> bool:
        return self.meta_node is not None and self.meta_node.is_leader()

    # --------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._spawn(self._register_loop())
        self._spawn(leadership.balance_loop(self))
        self._spawn(self.reassigner.run())
        self._spawn(in_sync.report_loop(self, self._topic_ids))
        self._spawn(self.leader_reports.run())
        if not self.voter:
            self._spawn(self._observe_loop())

    async def stop(self) -> None:
        self._stopped = True
        if self._next_pass is not None:
            self._next_pass.cancel()
            self._next_pass = None
        if self.opener is not None:
            await self.opener.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.channels.close()
        for key in list(self.partitions):
            self._close_partition(key, delete=False)
        self.host.remove(META_GROUP)
        if self.meta_log is not None:
            self.meta_log.close()

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ proposals
    async def propose(self, command: Command, timeout_s: float = PROPOSE_TIMEOUT_S) -> int:
        """Appends a command to the metadata log (through the controller, wherever it is)
        and returns its offset once this broker has applied it. A proposal can be lost (its
        leader deposed before it committed, its log truncated) while the offset it was
        given is taken by another command: only the command's own application counts, and
        a lost one is proposed again (an acknowledged topic change was lost this way)."""
        deadline = clock.monotonic() + timeout_s
        while True:
            offset, applied = await self._propose_once(command, deadline, timeout_s)
            if applied is not None or \
                    regressions.LOST_PROPOSAL_COUNTS in regressions.reintroduced:
                return offset
            self._lost(deadline, timeout_s)

    def new_request_id(self) -> str:
        """An id no other proposal of any broker carries (seeded rng: the sim replays)."""
        self._requests += 1
        return f"{self.id}.{self._rng.getrandbits(64):016x}.{self._requests}"

    async def propose_tracked(self, make: Callable[[], Command],
                              timeout_s: float = PROPOSE_TIMEOUT_S) -> MetadataImage:
        """Proposes make()'s command until one is applied here, and returns the image just
        after it. Every attempt carries a request id of its own (make() draws a new one):
        a lost attempt applied late must not count twice (a named producer's epoch)."""
        deadline = clock.monotonic() + timeout_s
        while True:
            _, applied = await self._propose_once(make(), deadline, timeout_s)
            if regressions.LOST_PROPOSAL_COUNTS in regressions.reintroduced:
                return self.image
            if applied is not None:
                return applied
            self._lost(deadline, timeout_s)

    def _lost(self, deadline: float, timeout_s: float) -> None:
        if clock.monotonic() >= deadline:
            raise BrokerError(Reason.NOT_CONTROLLER,
                f"the metadata change was lost in controller changes for {timeout_s:.0f}s;"
                " retry")
        log.info("a metadata proposal was lost in a controller change; proposing again")

    async def _propose_once(self, command: Command, deadline: float,
                            timeout_s: float) -> tuple[int, MetadataImage | None]:
        """One proposal, retried until a controller takes it: its offset, and the image
        after it if this broker applied that very command there."""
        delay = 0.05
        self._tracked.setdefault(command, None)  # an equal command's proposer may wait too
        self._tracking[command] = self._tracking.get(command, 0) + 1
        try:
            while True:
                try:
                    term = None  # a remote controller answers once it applied the command
                    if self.is_controller():
                        offset, term = await self._propose_local(command, deadline)
                    else:
                        offset = await self._propose_remote(command, deadline)
                    await self.wait_applied(offset, max(0.0, deadline - clock.monotonic()),
                                            term)
                    return offset, self._tracked.get(command)
                except (NotLeader, _Retry) as exc:
                    if clock.monotonic() + delay > deadline:
                        raise BrokerError(Reason.NOT_CONTROLLER,
                            f"no controller could take the metadata change within "
                            f"{timeout_s:.0f}s ({exc})") from None
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.5)
        finally:
            left = self._tracking[command] - 1
            if left:
                self._tracking[command] = left
            else:
                del self._tracking[command]
                self._tracked.pop(command, None)

    async def _propose_local(self, command: Command, deadline: float) -> tuple[int, int]:
        assert self.meta_node is not None
        data = encode_batch([(clock.time_ms(), None, command.encode())])
        term = self.meta_node.term
        offset = self.meta_node.propose(data, 1)
        self.host.schedule(META_GROUP)
        return offset, term

    async def _propose_remote(self, command: Command, deadline: float) -> int:
        sent_to = self.controller_id
        if (address := self.address_of(sent_to)) is None:
            raise _Retry("no controller elected yet")
        call = self.controller.propose(address, command.encode(),
                                       max(0.1, deadline - clock.monotonic()))
        try:
            return await unless_moved(call, sent_to, lambda: self.controller_id)
        except (PeerUnavailable, ControllerMoved) as exc:
            raise _Retry(str(exc)) from None

    async def wait_applied(self, offset: int, timeout_s: float,
                           term: int | None = None) -> None:
        """Returns once the image is at offset, or, for an entry proposed here in term,
        once the log settled what is at offset: a later term's entry committed at or
        below it means it can never commit (a log's terms never go down). A new
        controller whose log was shorter may otherwise never reach that offset, and the
        proposer waited out its whole timeout (a CreateTopic failed with NOT_CONTROLLER
        after 15 s, leader reports waited 60 s)."""
        if self.image.last_offset >= offset or self._settled(offset, term):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applied_waiters.append((offset, term, future))
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise _Retry(f"metadata offset {offset} not applied in time") from None

    async def wait_for(self, check: Callable[[MetadataImage], bool], timeout_s: float) -> bool:
        deadline = clock.monotonic() + timeout_s
        while not check(self.image):
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                return False
            event = self._image_changed
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return False
        return True

    # ------------------------------------------------------------ applying
    def apply_committed(self, ready: Ready) -> None:
        commands = []
        for entry in ready.committed_entries:
            if entry.kind == EntryKind.NORMAL:
                commands += [(entry.index + i, record.value or b"") for i, record in
                             enumerate(iter_records(entry.data, verify=False))]
        if ready.committed_entries:
            last = ready.committed_entries[-1]
            self._committed = (last.last, last.term)
        self._apply_commands(commands)
        self._wake_waiters()  # a no-op of a new term can settle a lost proposal

    def install_snapshot(self, data: bytes) -> None:
        """A voter that fell behind the log start was sent the controller's image."""
        self.image = decode_snapshot(data)
        self._image_applied()

    def _apply_commands(self, commands: list[tuple[int, bytes]]) -> None:
        if not commands:
            return
        for offset, value in commands:
            try:
                command = decode_command(value)
            except ValueError as exc:
                log.error("metadata entry at %d is not a command: %s", offset, exc)
                continue
            self.image = apply(self.image, offset, command)
            if self._tracked and command in self._tracked:
                self._tracked[command] = self.image
        self._image_applied()
        storage = self.meta_storage
        every = self.settings.metadata_snapshot_every
        if storage is not None and self.image.last_offset - storage.snapshot_index >= every:
            storage.compact(self.image.last_offset, encode_snapshot(self.image))
            log.info("metadata snapshot at offset %d", self.image.last_offset)

    def _settled(self, offset: int, term: int | None) -> bool:
        committed, committed_term = self._committed
        return term is not None and (committed >= offset or committed_term > term)

    def _wake_waiters(self) -> None:
        last = self.image.last_offset
        keep = []
        for offset, term, future in self._applied_waiters:
            if offset <= last or self._settled(offset, term):
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((offset, term, future))
        self._applied_waiters = keep

    def _image_applied(self) -> None:
        self._wake_waiters()
        event, self._image_changed = self._image_changed, asyncio.Event()
        event.set()
        self.reconcile()

    # ------------------------------------------------------------ observers
    async def read_metadata(self, offset: int, max_wait_s: float) -> tuple[bytes, int, bytes]:
        """Committed metadata batches from offset (observers), or the snapshot; long-polls."""
        if self.meta_log is None or self.meta_storage is None:
            raise BrokerError(Reason.NOT_CONTROLLER,
                              f"broker {self.id} is not a metadata voter")
        if offset < self.meta_storage.first_index():
            snapshot = self.meta_storage.snapshot()
            return b"", snapshot.meta.index + 1, snapshot.data
        deadline = clock.monotonic() + max_wait_s
        while True:
            applied_end = self.image.last_offset + 1
            start = max(offset, self.meta_log.log_start_offset)
            if start < applied_end:
                result = self.meta_log.read(start, 1 << 20, max_offset=applied_end)
                return result.data, result.next_offset, b""
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                return b"", offset, b""
            event = self._image_changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def _observe_loop(self) -> None:
        offset = 0
        voters = sorted(self.settings.voters)
        turn = 0
        while True:
            target = self._observed_controller
            if target is None or target not in self.settings.voters:
                target = voters[turn % len(voters)]
                turn += 1
            address = self.address_of(target)
            if address is None:
                await asyncio.sleep(0.2)
                continue
            try:
                reply = await self.controller.fetch_metadata(address, offset, 2000, 5)
            except (PeerUnavailable, BrokerError):
                self._observed_controller = None
                await asyncio.sleep(0.2)
                continue
            self._observed_controller = reply.controller_id
            if reply.snapshot:
                self.install_snapshot(reply.snapshot)
            # iter_records skips control batches (Raft's no-ops and membership changes).
            self._apply_commands([(record.offset, record.value or b"")
                                  for record in iter_records(reply.records)])
            offset = max(offset, reply.next_offset)

    @property
    def opening(self) -> bool:
        """Replicas the image gives this broker are still being opened."""
        opener = self.opener
        return self._next_pass is not None or bool(opener and (opener.in_flight or opener.held))

    def reconcile(self) -> None:
        """Opens the replicas the image gives this broker and closes the others. The files
        of new ones open in the opener's workers, or inline JOB_SIZE per pass of the loop
        (replica_files.py)."""
        if self._stopped:
            return
        if self._next_pass is not None:
            self._next_pass.cancel()  # this pass does its work (a no-op if this is it)
            self._next_pass = None
        budget, requests = JOB_SIZE, []
        opener = self.opener
        wanted: dict[tuple[str, int], tuple[str, tuple[int, ...]]] = {}
        base = effective_defaults(self.settings.topic_defaults, self.image.cluster_configs)
        for topic, index, info in self.image.iter_partitions():
            if self.id in info.effective_replicas or self.id in info.replicas:
                topic_info = self.image.topics[topic]
                wanted[(topic, index)] = (topic_info.topic_id, info.replicas)
        for key in list(self.partitions):
            if key not in wanted or self._topic_ids.get(key) != wanted[key][0]:
                self._close_partition(key, delete=True)
        for key, (topic_id, replicas) in wanted.items():
            replicas = self._voting_replicas(replicas)
            config = LogConfig.from_dict(self.image.topics[key[0]].configs, base=base)
            partition = self.partitions.get(key)
            if partition is not None:
                if partition.log.config != config:
                    partition.log.update_config(config)
            elif opener is None or not opener.busy(key):  # checked again once registered
                request = OpenRequest(key, topic_id,
                                      self.settings.data_dir / partition_group(*key), config)
                if opener is not None:
                    requests.append(request)
                elif budget == 0:
                    self._reconcile_later()
                else:
                    budget -= 1
                    self._register_partition(
                        open_files(request, clock.time_ms, self.new_replicas.batched), replicas)
        if opener is not None and requests:
            for request in requests:
                self.host.expect(partition_group(*request.key))  # keeps their messages
            opener.submit(requests)
        self.new_replicas.flush()
        self._peers_changed()

    def _voting_replicas(self, replicas: tuple[int, ...]) -> tuple[int, ...]:
        return replicas if self.id in replicas else ()  # joining by reassignment: none

    def _register_opened(self, opened: list[OpenedFiles]) -> None:
        for files in opened:
            info = self.image.partition(*files.request.key)
            self._register_partition(
                files, self._voting_replicas(info.replicas) if info is not None else ())
        self.reconcile()  # starts them, and closes any the image no longer gives here

    def _reconcile_later(self) -> None:
        if self._next_pass is None:
            self._next_pass = asyncio.get_running_loop().call_soon(self.reconcile)

    def _register_partition(self, files: OpenedFiles, replicas: tuple[int, ...]) -> None:
        """A replica whose files are open joins the node (its group starts with the next
        NewReplicas flush once it is durable, or now)."""
        key, topic_id, plog = files.request.key, files.request.topic_id, files.log
        topic, index = key
        name = partition_group(topic, index)
        id_file = files.request.directory / "topic-id"
        plog.flush_observer = self.flush_observer
        self.adopt_log(plog)
        batched = files.fresh and self.new_replicas.batched
        storage = PartitionRaftStorage(
            plog, replicas, producer_id_expiration_ms=self.settings.producer_id_expiration_ms,
            sync_behind=self.host.syncer is not None, journal=self.host.journal,
            journal_key=f"{name}/{topic_id}")
        node = self._partition_node(storage)
        partition = ReplicatedPartition(
            topic, index, plog, node, lambda: self.host.schedule(name), self.address_of,
            liveness_s=self.settings.tick_interval_s * self.settings.election_ticks,
            broker_alive=self.broker_alive, producers=storage.producers,
            producer_epoch=lambda pid: self.image.producers.epochs.get(pid),
            fresh_since=self.host.fresh_since)
        partition.on_leader_change = self._leader_changed
        self.partitions[key] = partition
        self._topic_ids[key] = topic_id
        group, preferred = RaftGroup(name, node, storage, partition), replicas[:1] == (self.id,)
        if batched:
            self.new_replicas.add(group, id_file, preferred)
        else:
            self.new_replicas.start_now(group, preferred)
        self.repair.watch(name, partition, storage)

    def _partition_node(self, storage: PartitionRaftStorage) -> RaftNode:
        return RaftNode(self._raft_config(False, storage.lost_commit), storage, self._rng)

    def _close_partition(self, key: tuple[str, int], delete: bool) -> None:
        partition = self.partitions.pop(key)
        name, topic_id = partition_group(*key), self._topic_ids.pop(key, None)
        self.new_replicas.forget(name)
        self.host.remove(name, f"{name}/{topic_id}" if delete else None)
        partition.close(delete=delete)

    def _leader_changed(self, partition: ReplicatedPartition) -> None:
        if partition.leader == self.id:
            key = (partition.topic, partition.index)
            self.leader_reports.won(*key, partition.leader_term, self._topic_ids.get(key))

    async def _register_loop(self) -> None:
        s = self.settings
        me = RegisterBroker(s.broker_id, s.host, s.port, s.rack, s.kafka_port, s.endpoints)
        while not registered_as(self.image.brokers.get(self.id), me):
            try:
                await self.propose(me, timeout_s=5)
            except BrokerError as exc:  # no quorum yet: keep trying until one forms
                log.debug("registration of broker %d waits: %s", self.id, exc.message)

    def awake_partitions(self) -> list[ReplicatedPartition]:
        """The replicas whose Raft group is not quiet."""
        groups = self.host.groups
        return [g.listener for name in self.host.awake_groups()
                if (g := groups.get(name)) is not None
                and isinstance(g.listener, ReplicatedPartition)]

    def hand_off_leadership(self) -> int:
        return leadership.hand_off(self)

class _Retry(Exception):
    """A proposal found no controller, or was not applied in time: try again."""
