"""One seed of the whole-broker simulation: brokers, clients, faults, heal, checks.

Everything random comes from the seed: the parameters, the network's delays and losses,
the faults and when they strike, the brokers' Raft timeouts, the clients' choices, the
crash damage to unsynced writes and the topic ids (uuid4, patched for the run). The event
loop runs on virtual time, so a seed replays exactly (given the same PYTHONHASHSEED:
run.py pins it, as set iteration order over strings depends on it)."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from odradek.broker import clock
from odradek.broker.errors import BrokerError
from odradek.broker.groups.coordinator import OFFSETS_TOPIC
from tests.sim.real_storage import RealDisk
from tests.sim_broker.broker import (
    OFFSETS_PARTITIONS,
    SimBroker,
    committed_records,
    sim_topic_defaults,
)
from tests.sim_broker.groups import GroupMember, check_offsets_log, group_settled
from tests.sim_broker.history import BUG_B_ADMIN, TP, History
from tests.sim_broker.loop import SimLoop
from tests.sim_broker.net import CallTimeout, NetParams, Network
from tests.sim_broker.workload import (
    Admin,
    Client,
    Consumer,
    IdClient,
    NamedProducer,
    Producer,
    admin_call,
)

EPOCH_S = 1_700_000_000.0
BOOTSTRAP_S = 60.0
LIVENESS_S = 30.0
CONVERGE_S = 20.0
GROUP_TOPIC = "t0"
FAULT_KINDS = ("partition", "one_way", "client_partition", "crash", "pause", "heal_net")


def memory_dir() -> Path | None:
    """tmpfs when there is one: the brokers rename and rewrite small state files all the
    time, and a disk's metadata operations would be most of a seed's run time."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


class SimClock:
    """The brokers' clock (odradek.broker.clock) read from the loop's virtual time."""

    def __init__(self, loop: SimLoop) -> None:
        self._loop = loop

    def monotonic(self) -> float:
        return self._loop.time()

    def time(self) -> float:
        return EPOCH_S + self._loop.time()


@dataclass
class SimParams:
    brokers: int
    voters: int
    topics: int
    partitions: int
    producers: int
    pid_block: int
    fault_s: float
    fault_every_s: float
    segment_bytes: int
    reinit: float  # chance that a producer starts a new instance after a write
    admin: bool  # topic changes during the faults
    id_clients: int  # clients that only ask for producer ids, often
    faults: tuple[int, ...]  # weights of the fault kinds (FAULT_KINDS)
    net: NetParams
    group_members: int  # consumers in one group over the first topic (0: no group)
    group_churn: float  # chance that a member leaves for a while after a session
    named: bool  # a named producer whose instances fence one another

    @classmethod
    def from_seed(cls, rng: random.Random) -> SimParams:
        brokers = rng.choice([3, 3, 5])
        return cls(brokers=brokers, voters=rng.choice([3, brokers]),
                   topics=rng.randint(1, 2), partitions=rng.randint(1, 3),
                   producers=rng.randint(1, 3), pid_block=rng.choice([1, 3, 1000]),
                   fault_s=rng.choice([10.0, 20.0]), fault_every_s=rng.choice([0.5, 1.0, 2.0]),
                   segment_bytes=rng.choice([4096, 1 << 20]),
                   reinit=rng.choice([0.0, 0.05, 0.2]), admin=rng.random() < 0.5,
                   id_clients=rng.choice([0, 1, 2]),
                   faults=tuple(rng.choice([0, 1, 3]) for _ in FAULT_KINDS),
                   net=NetParams.from_seed(rng), group_members=rng.choice([0, 2, 3]),
                   group_churn=rng.choice([0.0, 0.2, 0.5]), named=rng.random() < 0.5)


class World:
    def __init__(self, seed: int, verbose: bool = False) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.p = SimParams.from_seed(self.rng)
        self.verbose = verbose
        self.loop = SimLoop()
        self.net = Network(self.loop, random.Random(self.rng.getrandbits(64)), self.p.net)
        self.fault_rng = random.Random(self.rng.getrandbits(64))
        # Its own stream (not drawn from self.rng), so that the seeds known to find the
        # fixed bugs still play out as they did before the partitions could reset.
        self.reset_rng = random.Random(f"{seed}/resets")
        self.disk = RealDisk(memory_dir())
        self.topic_defaults = sim_topic_defaults(self.p.segment_bytes)
        self.voters = list(range(1, self.p.voters + 1))
        self.brokers = {i: SimBroker(self, i, self.disk.root / f"b{i}")
                        for i in range(1, self.p.brokers + 1)}
        self.history = History()
        self.trace: list[str] = []
        self.partitions: list[TP] = []
        self.stopping = False
        self.admin_stopping = False
        self.draining: set[int] = set()
        self.removed: set[str] = set()
        self._consumers: list[Consumer] = []
        self.members: list[GroupMember] = []
        self._next_client = 0
        self.faults: dict[str, int] = {}
        self._clients: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------ running
    def run(self) -> dict[str, Any]:
        previous_clock = clock.set_clock(SimClock(self.loop))
        uuid_rng = random.Random(self.rng.getrandbits(64))
        real_uuid4 = uuid.uuid4
        uuid.uuid4 = lambda: uuid.UUID(int=uuid_rng.getrandbits(128), version=4)
        odradek_log = logging.getLogger("odradek")
        level = odradek_log.level
        if not self.verbose:  # elections, recoveries and lost proposals are the point here
            odradek_log.setLevel(logging.CRITICAL)
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except RuntimeError:
            if self.loop.livelock is None:
                raise
            self.history.problem("LIVELOCK", self.loop.livelock)
        finally:
            for broker in self.brokers.values():
                if broker.proc is not None:
                    self.loop.kill(broker.proc)
                if broker.host is not None and broker.host.journal is not None:
                    broker.host.journal.close()
            for task in self._clients:
                task.cancel()
            self.loop.run_until_complete(asyncio.sleep(0))
            # The dead brokers' tasks stay pending: end their coroutines while the loop is
            # open (their finally blocks schedule work, which is dropped), not at
            # collection time, after the loop closed.
            for task in asyncio.all_tasks(self.loop):
                task.get_coro().close()
            asyncio.set_event_loop(None)
            self.loop.close()
            uuid.uuid4 = real_uuid4
            clock.set_clock(previous_clock)
            odradek_log.setLevel(level)
            self.disk.close()
        return self.stats()

    def stats(self) -> dict[str, Any]:
        return {"sim_s": round(self.loop.time(), 3), "faults": sum(self.faults.values()),
                **{f"fault_{k}": v for k, v in sorted(self.faults.items())},
                **self.history.counts, **{f"net_{k}": v for k, v in self.net.stats.items()},
                "loop_errors": len(self.loop.errors), "problems": len(self.history.problems)}

    def params(self) -> dict[str, Any]:
        return asdict(self.p)

    def note(self, text: str) -> None:
        self.trace.append(f"{self.loop.time():9.3f} {text}")

    async def _main(self) -> None:
        for broker in self.brokers.values():
            broker.start()
        await self._bootstrap()
        if self.history.problems:
            return
        producers = [Producer(self, i) for i in range(self.p.producers)]
        self._next_client = self.p.producers
        self._clients = [self.loop.spawn_as(None, c.run()) for c in producers]
        for i in range(self.p.id_clients):
            self._clients.append(self.loop.spawn_as(None, IdClient(self, f"i{i}").run()))
        if self.p.named:
            named = NamedProducer(self, self._next_client)
            self._next_client += 1
            producers.append(named)  # checked for progress after the heal as the others
            self._clients.append(self.loop.spawn_as(None, named.run()))
        for _ in range(self.p.group_members):
            member = GroupMember(self, self._next_client, [GROUP_TOPIC])
            self._next_client += 1
            self.members.append(member)
            self._clients.append(self.loop.spawn_as(None, member.run()))
        self.add_partitions(list(self.partitions), known=True)
        admin = self.loop.spawn_as(None, Admin(self).run()) if self.p.admin else None
        await self._faults(self.p.fault_s)
        self._heal()
        healed = self.loop.time()
        self.admin_stopping = True
        if admin is not None:  # its last change must be known before checking metadata
            await asyncio.wait([admin], timeout=60)
            admin.cancel()
        await self._drop_lost_partitions()
        clients: list[Client] = [*producers, *self._consumers]

        def live() -> list[Client]:
            return [c for c in clients
                    if not isinstance(c, Consumer) or c.tp in self.partitions]

        def group_partitions() -> set[TP]:
            return {tp for tp in self.partitions if tp[0] == GROUP_TOPIC}

        await self._until(lambda: all(c.last_success > healed for c in live())
                          and group_settled(self.members, group_partitions()) is None,
                          LIVENESS_S)
        for c in live():
            if c.last_success <= healed:
                self.history.problem("NO_PROGRESS_AFTER_HEAL",
                                     f"{c.name} did not succeed within {LIVENESS_S:.0f}s")
        unsettled = group_settled(self.members, group_partitions())
        if unsettled is not None:
            self.history.problem("GROUP_NOT_SETTLED", f"{LIVENESS_S:.0f}s after the heal "
                                 f"the group's assignment is not whole: {unsettled}")
        self.stopping = True
        for result in await asyncio.gather(*self._clients, return_exceptions=True):
            if isinstance(result, Exception):  # the workload's own bug, or the broker's
                self.history.problem("CLIENT_CRASHED", f"{type(result).__name__}: {result}")
        await self._final_check()

    async def _drop_lost_partitions(self) -> None:
        """Once every broker has the same metadata: partitions an admin request was told
        were created but that the metadata does not have (known bug b's root cause) are
        reported, and left out of the liveness and log checks."""
        def controller() -> Any:
            return next((b.cluster for b in self.brokers.values() if b.cluster is not None
                         and b.cluster.is_controller()), None)

        def same_metadata() -> bool:
            # A controller that applied all it committed (restarted brokers replay their
            # log first), and every broker at the same point.
            c = controller()
            if c is None or c.meta_node is None:
                return False
            last = c.image.last_offset
            return c.meta_node.log.applied >= c.meta_node.commit_index and all(
                b.cluster is not None and b.cluster.image.last_offset == last
                for b in self.brokers.values())
        if not await self._until(same_metadata, CONVERGE_S):
            self.history.problem("NO_CONVERGENCE", "the brokers' metadata did not converge")
            return
        image = controller().image
        for tp in list(self.partitions):
            if image.partition(*tp) is None:
                self.history.problem(BUG_B_ADMIN, f"partition {tp[0]}-{tp[1]} was "
                                     f"acknowledged as created; the metadata has no such "
                                     f"partition")
                self.partitions.remove(tp)

    def add_partitions(self, tps: list[TP], known: bool = False) -> None:
        """New partitions to write to, each with a consumer tailing it."""
        for tp in tps:
            if not known:
                self.partitions.append(tp)
            consumer = Consumer(self, self._next_client, tp)
            self._next_client += 1
            self._consumers.append(consumer)
            self._clients.append(self.loop.spawn_as(None, consumer.run()))

    def remove_topic(self, topic: str) -> None:
        self.removed.add(topic)
        self.partitions[:] = [tp for tp in self.partitions if tp[0] != topic]

    async def _until(self, check: Callable[[], bool], within_s: float) -> bool:
        deadline = self.loop.time() + within_s
        while not check():
            if self.loop.time() >= deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def _bootstrap(self) -> None:
        admin = Client(self, "admin")
        deadline = self.loop.time() + BOOTSTRAP_S
        for t in range(self.p.topics):
            name = f"t{t}"
            await self._admin(admin, lambda a, n=name: a.create(
                n, self.p.partitions, min(3, self.p.brokers), {}, False), deadline)
            self.partitions += [(name, i) for i in range(self.p.partitions)]
        if self.p.group_members:
            rf = min(3, self.p.brokers)
            await self._admin(admin, lambda a: a.create(
                OFFSETS_TOPIC, OFFSETS_PARTITIONS, rf, {"cleanup.policy": "compact"}, False),
                deadline)
        self.note(f"bootstrapped: {self.partitions}")

    async def _admin(self, admin: Client, request: Callable[[Any], Awaitable[Any]],
                     deadline: float) -> Any:
        while self.loop.time() < deadline:
            try:
                return await admin_call(self, admin, request, 12.0)
            except (BrokerError, CallTimeout) as exc:
                if isinstance(exc, BrokerError) and exc.reason == "TOPIC_ALREADY_EXISTS":
                    return None  # an earlier try went through; its answer was lost
                self.note(f"admin request failed: {exc}")
                await admin.backoff()
        self.history.problem("NO_PROGRESS", "an admin request found no controller in time")
        return None

    # ------------------------------------------------------------ faults
    async def _faults(self, duration_s: float) -> None:
        rng = self.fault_rng
        end = self.loop.time() + duration_s
        while self.loop.time() < end:
            await asyncio.sleep(rng.expovariate(1 / self.p.fault_every_s))
            self._one_fault(rng)

    def _count(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def _one_fault(self, rng: random.Random) -> None:
        ids = sorted(self.brokers)
        broker = self.brokers[rng.choice(ids)]
        # Faults favour the controller: the metadata path is where lost proposals live.
        controller = next((b for b in self.brokers.values() if b.up and not b.paused
                           and b.cluster is not None and b.cluster.is_controller()), None)
        if controller is not None and rng.random() < 0.3:
            broker = controller
        weights = self.p.faults if any(self.p.faults) else (1,) * len(FAULT_KINDS)
        kind = rng.choices(FAULT_KINDS, weights)[0]
        if kind in ("crash", "pause") and not broker.up:
            kind = "restart"
        elif kind in ("crash", "pause") and broker.paused:
            kind = "resume"
        if kind == "partition":
            other = self.brokers[rng.choice([i for i in ids if i != broker.id])]
            self.net.block(broker.name, other.name)
            self.net.block(other.name, broker.name)
            # Half of the partitions reject with a reset (a firewall's reject, a dead
            # route): each side sees its connection to the other refused, while both
            # live on.
            reset = self.reset_rng.random() < 0.5
            if reset:
                broker.connection_refused(other.id)
                other.connection_refused(broker.id)
            self.note(f"partition {broker.name} <-> {other.name}{' (reset)' if reset else ''}")
        elif kind == "one_way":
            other = self.brokers[rng.choice([i for i in ids if i != broker.id])]
            self.net.block(broker.name, other.name)
            self.note(f"partition {broker.name} -> {other.name}")
        elif kind == "client_partition":
            client = f"c{rng.randrange(self._next_client)}"
            self.net.block(client, broker.name)
            if rng.random() < 0.5:
                self.net.block(broker.name, client)
            self.note(f"partition {client} from {broker.name}")
        elif kind == "heal_net":
            self.net.heal()
            self.note("network healed")
        elif kind == "crash":
            broker.crash(rng)
            self.note(f"crash {broker.name}")
            self._later(rng.uniform(0.2, 3.0), broker, lambda b=broker: self._restart(b))
        elif kind == "restart":
            self._restart(broker)
        elif kind == "pause":
            broker.pause()
            self.note(f"pause {broker.name}")
            self._later(rng.uniform(0.2, 4.0), broker, lambda b=broker: self._resume(b))
        elif kind == "resume":
            self._resume(broker)
        self._count(kind)

    def _later(self, delay: float, broker: SimBroker, action: Callable[[], None]) -> None:
        life = broker.life
        self.loop.call_later(delay, lambda: action() if broker.life == life else None)

    def _restart(self, broker: SimBroker) -> None:
        if not broker.up:
            broker.start()
            self.note(f"restart {broker.name} (life {broker.life})")

    def _resume(self, broker: SimBroker) -> None:
        if broker.paused:
            broker.resume()
            self.note(f"resume {broker.name}")

    def _heal(self) -> None:
        self.net.heal()
        self.net.p = NetParams(drop=0.0, max_delay_s=self.p.net.max_delay_s, long_delay=0.0)
        for broker in self.brokers.values():
            self._resume(broker)
            self._restart(broker)
        self.note("healed")

    # ------------------------------------------------------------ after the heal
    async def _final_check(self) -> None:
        converged = await self._until(self._converged, CONVERGE_S)
        if not converged:
            self.history.problem("NO_CONVERGENCE", f"replicas did not converge within "
                                 f"{CONVERGE_S:.0f}s of the end: {self._lag()}")
            return
        logs: dict[TP, dict[str, list[tuple[int, bytes]]]] = {}
        leaders: dict[TP, str] = {}
        for tp in self.partitions:
            for broker in self.brokers.values():
                assert broker.cluster is not None
                partition = broker.cluster.partitions.get(tp)
                if partition is None:
                    continue
                logs.setdefault(tp, {})[broker.name] = [
                    (r.offset, r.value or b"") for r in committed_records(partition)]
                if partition.node.is_leader():
                    leaders[tp] = broker.name
        self.history.check_logs(logs, leaders)
        if self.members:
            check_offsets_log(self)

    def _replicas(self, tp: TP) -> list[tuple[str, Any]]:
        out = []
        for broker in self.brokers.values():
            if broker.cluster is not None and tp in broker.cluster.partitions:
                out.append((broker.name, broker.cluster.partitions[tp]))
        return out

    def _converged(self) -> bool:
        offsets = [(OFFSETS_TOPIC, i) for i in range(OFFSETS_PARTITIONS)] if self.members else []
        for tp in [*self.partitions, *offsets]:
            replicas = [p for _, p in self._replicas(tp)]
            leaders = [p for p in replicas if p.node.is_leader()]
            if len(leaders) != 1:
                return False
            end = leaders[0].log.log_end_offset
            if any(p.high_watermark != end or p.log.log_end_offset != end for p in replicas):
                return False
        return True

    def _lag(self) -> str:
        offsets = [(OFFSETS_TOPIC, i) for i in range(OFFSETS_PARTITIONS)] if self.members else []
        return "; ".join(
            f"{tp[0]}-{tp[1]}: " + ", ".join(
                f"{name} {p.node.role.name.lower()} term={p.node.term} "
                f"voters={sorted(p.node.config.voters)} hw={p.high_watermark} "
                f"end={p.log.log_end_offset}" for name, p in self._replicas(tp))
            for tp in [*self.partitions, *offsets])


def run_seed(seed: int, verbose: bool = False) -> World:
    world = World(seed, verbose)
    world.run()
    return world

