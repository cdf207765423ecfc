"""Clients of the simulated cluster: idempotent producers and tailing consumers.

They call the broker's domain objects as the gRPC servicers do (service.py: Produce ->
leader_partition(...).append, Fetch -> partition.read, InitProducerId ->
producer_ids.init), over the simulated network, and retry as the real client does: a
retriable reason (odradek.client.errors.RETRIABLE_REASONS) or no answer in time means
try again, after a backoff, at the leader the error names or at another broker."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any

from odradek.broker import clock
from odradek.broker.errors import BrokerError
from odradek.client.errors import RETRIABLE_REASONS
from odradek.records import iter_records
from odradek.records.builder import BatchBuilder
from tests.sim_broker.broker import SimBroker, not_controller
from tests.sim_broker.history import TP
from tests.sim_broker.net import CallTimeout

if TYPE_CHECKING:
    from tests.sim_broker.world import World

REQUEST_TIMEOUT_S = 2.0
APPEND_TIMEOUT_S = 1.5
DELIVERY_TIMEOUT_S = 10.0
CONTROLLER: TP = ("", -1)  # the key of the controller hint


class Client:
    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.name = name
        self.rng = random.Random(world.rng.getrandbits(64))
        self.hints: dict[TP, int] = {}
        self.last_success = 0.0

    def pick(self, tp: TP | None = None) -> SimBroker:
        hint = self.hints.get(tp) if tp is not None else None
        if self.rng.random() < 0.05:
            hint = None  # as a metadata refresh may name a stale leader: ask around
        brokers = self.world.brokers
        if hint is not None and hint in brokers:
            return brokers[hint]
        return brokers[self.rng.choice(sorted(brokers))]

    def learn(self, tp: TP, error: BrokerError | None) -> None:
        leader = error.metadata.get("leader_id") if error is not None else None
        if leader is not None:
            self.hints[tp] = int(leader)
        else:
            self.hints.pop(tp, None)

    async def backoff(self) -> None:
        await asyncio.sleep(self.rng.uniform(0.02, 0.2))


class Producer(Client):
    """Writes unique values (``P<k>.<n>``), one batch at a time, to random partitions."""

    def __init__(self, world: World, index: int) -> None:
        super().__init__(world, f"c{index}")
        self.next_value = 0
        self.identity: tuple[int, int] | None = None
        self.sequences: dict[TP, int] = {}

    async def run(self) -> None:
        while not self.world.stopping:
            if self.identity is None:
                await self.init_identity()
                continue
            if self.world.partitions:
                await self.write_one()
            await asyncio.sleep(self.rng.uniform(0, 0.1))

    async def init_identity(self) -> None:
        broker = self.pick()

        async def init(b: SimBroker) -> tuple[int, int]:
            assert b.cluster is not None
            return await b.cluster.producer_ids.init(None)

        try:
            pid, epoch = await broker.call(self.name, init, REQUEST_TIMEOUT_S * 4)
        except (BrokerError, CallTimeout):
            await self.backoff()
            return
        self.world.history.producer_id(pid, epoch, f"{broker.name} to {self.name} at "
                                       f"t={clock.monotonic():.3f}")
        self.world.note(f"{self.name} pid {pid}.{epoch} from {broker.name}")
        self.identity = (pid, epoch)
        self.sequences = {}

    async def write_one(self) -> None:
        assert self.identity is not None
        tp = self.rng.choice(self.world.partitions)
        count = self.rng.randint(1, 3)
        values = [b"P%s.%d" % (self.name.encode(), self.next_value + i) for i in range(count)]
        self.next_value += count
        seq = self.sequences.get(tp, 0)
        builder = BatchBuilder(producer_id=self.identity[0], producer_epoch=self.identity[1],
                               base_sequence=seq)
        for value in values:
            builder.append(clock.time_ms(), None, value)
        base = await self.deliver(tp, builder.build())
        if base is None:
            # Maybe stored, maybe not: this sequence cannot go on. A new identity, as the
            # real producer takes after giving up on a batch.
            self.world.history.maybe_produced(values)
            self.identity = None
            return
        self.sequences[tp] = seq + count
        self.last_success = clock.monotonic()
        self.world.history.produced(self.name, tp, values, base, self.identity)
        self.world.note(f"{self.name} acked {tp[0]}-{tp[1]}@{base} x{count}")
        if self.rng.random() < self.world.p.reinit:
            self.identity = None  # a new producer instance: InitProducerId again

    async def deliver(self, tp: TP, records: bytes) -> int | None:
        """The base offset the batch was stored at, or None when the outcome is unknown."""
        deadline = clock.monotonic() + DELIVERY_TIMEOUT_S

        async def produce(b: SimBroker) -> tuple[int, ...]:
            assert b.admin is not None
            partition = b.admin.leader_partition(*tp)
            info = await partition.append(records, quorum=True, timeout_s=APPEND_TIMEOUT_S)
            return info.batch_offsets

        while (clock.monotonic() < deadline and not self.world.stopping
               and tp in self.world.partitions):
            broker = self.pick(tp)
            try:
                offsets = await broker.call(self.name, produce, REQUEST_TIMEOUT_S)
            except CallTimeout:
                self.learn(tp, None)
            except BrokerError as exc:
                if exc.reason not in RETRIABLE_REASONS:
                    self.world.history.count(f"produce_{exc.reason}")
                    return None
                self.learn(tp, exc)
            else:
                return int(offsets[0])
            await self.backoff()
        return None


class NamedProducer(Client):
    """Instances of one producer name: each new instance takes the name's next epoch and
    fences the one before, which goes on writing for a while (a zombie). An instance whose
    batch had no sure outcome initialises again naming the identity it had (a resume),
    as the real client does; a fenced one may not take the name back."""

    NAME = "named"

    def __init__(self, world: World, index: int) -> None:
        super().__init__(world, f"c{index}")
        self.instances = 0
        self.next_value = 0

    async def run(self) -> None:
        """A supervisor: starts a new instance now and then, and when the newest one is
        stuck (as an orchestrator replaces a process that hangs), while the old ones go
        on until they are fenced."""
        tasks: list[asyncio.Task[None]] = []
        newest: list[Any] | None = None
        try:
            while not self.world.stopping:
                if newest is None or tasks[-1].done() or self.rng.random() < 0.02 or (
                        newest[4] and self.rng.random() < 0.3):
                    identity = await self.init(None)
                    if identity is not None:
                        self.instances += 1
                        newest = [self.instances, *identity, {}, False]
                        tasks.append(asyncio.ensure_future(self.instance(newest)))
                await asyncio.sleep(self.rng.uniform(0.2, 0.5))
        finally:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def instance(self, state: list[Any]) -> None:
        """[number, pid, epoch, {tp: next sequence}, stuck]: writes until fenced."""
        while not self.world.stopping:
            if self.world.partitions and not await self.write(state):
                return
            await asyncio.sleep(self.rng.uniform(0, 0.1))

    async def init(self, resume: tuple[int, int] | None) -> tuple[int, int] | None:
        async def init(b: SimBroker) -> tuple[int, int]:
            assert b.cluster is not None
            return await b.cluster.producer_ids.init(self.NAME, resume)

        try:
            pid, epoch = await self.pick().call(self.name, init, REQUEST_TIMEOUT_S * 4)
        except CallTimeout:
            return None
        except BrokerError as exc:
            self.world.history.count(f"named_init_{exc.reason}")
            return None
        self.world.history.named_identity(pid, epoch, resume)
        return pid, epoch

    async def write(self, instance: list[Any]) -> bool:
        """One batch; False once the instance is fenced (or gives up)."""
        number, pid, epoch, sequences, _ = instance
        tp = self.rng.choice(self.world.partitions)
        value = b"N%d.%d" % (number, self.next_value)
        self.next_value += 1
        seq = sequences.get(tp, 0)
        builder = BatchBuilder(producer_id=pid, producer_epoch=epoch, base_sequence=seq)
        builder.append(clock.time_ms(), None, value)

        async def produce(b: SimBroker) -> tuple[int, ...]:
            assert b.admin is not None
            partition = b.admin.leader_partition(*tp)
            info = await partition.append(builder.build(), quorum=True,
                                          timeout_s=APPEND_TIMEOUT_S)
            return info.batch_offsets

        # Short delivery timeouts now and then: unsure outcomes, so instances (zombies
        # too) initialise again by resuming their identity.
        deadline = clock.monotonic() + self.rng.choice([0.5, 2.0, DELIVERY_TIMEOUT_S])
        unsure = False
        while clock.monotonic() < deadline and not self.world.stopping \
                and tp in self.world.partitions:
            try:
                offsets = await self.pick(tp).call(self.name, produce, REQUEST_TIMEOUT_S)
            except CallTimeout:
                self.learn(tp, None)
                instance[4] = True
                unsure = True
            except BrokerError as exc:
                if exc.reason == "PRODUCER_FENCED":
                    self.world.history.count("named_fenced")
                    return False
                if exc.reason == "UNKNOWN_TOPIC_OR_PARTITION":
                    if unsure:
                        break  # an earlier try may be stored: the sequence cannot go on
                    # Not stored (a topic being deleted, or a broker that has not opened
                    # the partition yet): write elsewhere with the same sequence.
                    return True
                if exc.reason not in RETRIABLE_REASONS:
                    self.world.history.count(f"named_{exc.reason}")
                    return False
                self.learn(tp, exc)
                unsure = True  # a deposed leader's NOT_LEADER: its successor may commit it
            else:
                sequences[tp] = seq + 1
                instance[4] = False
                self.world.history.named_ack(tp, int(offsets[0]), pid, epoch, value)
                self.last_success = clock.monotonic()
                return True
            await self.backoff()
        # No sure outcome: the sequence cannot go on; initialise again as the same
        # instance, which is refused once a newer instance took the name.
        self.world.history.maybe_produced([value])
        identity = await self.init((pid, epoch))
        if identity is None:
            return False
        instance[1:] = [*identity, {}, False]
        return True


class IdClient(Client):
    """Many short-lived producer instances: InitProducerId again and again, at any
    broker, so that brokers with small blocks keep going to the controller for more."""

    async def run(self) -> None:
        async def init(b: SimBroker) -> tuple[int, int]:
            assert b.cluster is not None
            return await b.cluster.producer_ids.init(None)

        while not self.world.stopping:
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))
            broker = self.pick()
            try:
                pid, epoch = await broker.call(self.name, init, REQUEST_TIMEOUT_S * 4)
            except (BrokerError, CallTimeout):
                continue
            self.last_success = clock.monotonic()
            self.world.history.producer_id(pid, epoch, f"{broker.name} to {self.name} at "
                                           f"t={clock.monotonic():.3f}")


class Consumer(Client):
    """Tails one partition from its leader, from offset 0."""

    def __init__(self, world: World, index: int, tp: TP) -> None:
        super().__init__(world, f"c{index}")
        self.tp = tp
        self.offset = 0

    async def run(self) -> None:
        tp = self.tp
        while not self.world.stopping and tp in self.world.partitions:
            next_offset = await fetch(self, tp, self.offset, 64 * 1024)
            if next_offset is not None:
                self.offset = max(self.offset, next_offset)
                self.last_success = clock.monotonic()
            await asyncio.sleep(self.rng.uniform(0.02, 0.15))


async def fetch(client: Client, tp: TP, offset: int, max_bytes: int) -> int | None:
    """One fetch at the partition's leader (as the client knows it); the next offset, or
    None when there was no answer. What the replica answered is recorded as it answers
    (answers to several clients may overtake each other on the way back)."""
    history = client.world.history

    async def read(b: SimBroker) -> int:
        assert b.admin is not None and b.proc is not None
        partition = b.admin.leader_partition(*tp)
        result = partition.read(offset, max_bytes)
        records = [(r.offset, r.value or b"") for r in iter_records(result.data)]
        history.fetched(tp, b.proc.name, offset, partition.high_watermark, records)
        return result.next_offset

    broker = client.pick(tp)
    try:
        next_offset: int = await broker.call(client.name, read, REQUEST_TIMEOUT_S)
    except CallTimeout:
        client.learn(tp, None)
        return None
    except BrokerError as exc:
        if exc.reason == "OFFSET_OUT_OF_RANGE":
            history.out_of_range(tp, broker.name, offset, exc.message)
            client.hints.pop(tp, None)
        else:
            client.learn(tp, exc)
        return None
    return next_offset


async def admin_call(world: World, client: Client, request: Any, timeout_s: float) -> Any:
    """Runs a TopicAdmin request on the controller (the one a refusal names, or any)."""
    broker = client.pick(CONTROLLER)

    async def on_controller(b: SimBroker) -> Any:
        assert b.cluster is not None and b.admin is not None
        if not b.cluster.is_controller():
            raise not_controller(b)
        return await request(b.admin)

    try:
        return await broker.call(client.name, on_controller, timeout_s)
    except BrokerError as exc:
        client.learn(CONTROLLER, exc)
        raise
    except CallTimeout:
        client.learn(CONTROLLER, None)
        raise


class Admin(Client):
    """Topic changes during the faults: create and delete topics, add partitions,
    reassign a partition, drain a broker (five-broker clusters, once). Topic names are
    never reused, so what the checkers know of a deleted topic cannot be confused with a
    new one. A change whose answer was lost may or may not have happened: the world only
    learns of partitions from answers (or from TOPIC_ALREADY_EXISTS on a retry)."""

    def __init__(self, world: World) -> None:
        super().__init__(world, "admin")
        self.created = 0
        self.drained = False

    async def run(self) -> None:
        while not self.world.admin_stopping:
            await asyncio.sleep(self.rng.uniform(0.5, 3.0))
            if self.world.admin_stopping:
                return
            action = self.rng.choice(["create", "delete", "partitions", "reassign",
                                      "reassign", "drain"])
            await getattr(self, action)()

    async def _do(self, what: str, request: Any, timeout_s: float = 12.0) -> bool:
        world = self.world
        deadline = clock.monotonic() + 15.0
        while clock.monotonic() < deadline:
            try:
                await admin_call(world, self, request, timeout_s)
            except CallTimeout:
                pass
            except BrokerError as exc:
                if exc.reason == "TOPIC_ALREADY_EXISTS":
                    break
                if exc.reason not in RETRIABLE_REASONS | {"NOT_CONTROLLER"}:
                    world.note(f"admin {what}: {exc.reason}")
                    world.history.count(f"admin_refused_{exc.reason}")
                    return False
            else:
                break
            await self.backoff()
        else:
            world.note(f"admin {what}: gave up")
            return False
        world.note(f"admin {what}: done")
        world.history.count("admin_changes")
        return True

    async def create(self) -> None:
        self.created += 1
        name, count = f"x{self.created}", self.rng.randint(1, 2)
        rf = min(3, len(self.world.brokers))
        if await self._do(f"create {name}", lambda a: a.create(name, count, rf, {}, False)):
            self.world.add_partitions([(name, i) for i in range(count)])

    async def delete(self) -> None:
        extra = sorted({t for t, _ in self.world.partitions if t.startswith("x")})
        if not extra:
            return
        name = self.rng.choice(extra)
        self.world.remove_topic(name)  # no more writes or checks: it is going away
        await self._do(f"delete {name}", lambda a: a.delete(name))

    async def partitions(self) -> None:
        topic = self.rng.choice(sorted({t for t, _ in self.world.partitions}))
        total = 1 + max(i for t, i in self.world.partitions if t == topic)
        if total >= 4:
            return
        if await self._do(f"add partition {topic}-{total}",
                          lambda a: a.create_partitions(topic, total + 1, False)):
            self.world.add_partitions([(topic, total)])

    async def reassign(self) -> None:
        topic, index = self.rng.choice(self.world.partitions)
        brokers = sorted(b for b in self.world.brokers if b not in self.world.draining)
        rf = min(3, len(self.world.brokers))
        if len(brokers) < rf:
            return
        replicas = self.rng.sample(brokers, rf)
        await self._do(f"reassign {topic}-{index} to {replicas}",
                       lambda a: a.reassign_partition(topic, index, replicas, False))

    async def drain(self) -> None:
        if self.drained or len(self.world.brokers) < 5:
            return
        self.drained = True
        broker = self.rng.choice(sorted(self.world.brokers))
        self.world.draining.add(broker)
        await self._do(f"drain b{broker}", lambda a: a.drain_broker(broker, False))
