"""Hands out producer ids and epochs (InitProducerId), on any broker.

A producer without a name gets the next id of this broker's block, a block being reserved
through the metadata log (AllocateProducerIds) when the last one is used up, so most
requests need no round trip to the controller; ids of a block a broker did not hand out
before it restarted are simply never used. A named producer goes through the metadata
log every time (InitNamedProducer): its id stays, its epoch goes up by one, and the
partitions refuse the older epochs from then on (PRODUCER_FENCED).

A block or an epoch counts only when the command applied carries this request's own id
(ClusterNode.propose_tracked): the offset a lost proposal was given may hold another
command, and the image then still shows this broker's previous block.

Names are bounded (Kafka's transactional.id.expiration.ms, and a cap): a name is in use
when an instance initialises or writes (the broker that sees a write says so, at most a
few times per expiry period: TouchNamedProducer), and the controller forgets names idle
for longer than the expiry (ExpireNamedProducers). A new name over the cap is refused."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from odradek.broker import clock
from odradek.broker.errors import BrokerError, Reason, invalid_request
from odradek.broker.logs import clip
from odradek.broker.metadata.commands import (
    AllocateProducerIds,
    Command,
    ExpireNamedProducers,
    InitNamedProducer,
    TouchNamedProducer,
)
from odradek.broker.metadata.image import MetadataImage
from odradek.broker.metadata.producer_ids import MAX_NAME_LENGTH, ProducerIds

log = logging.getLogger("odradek.broker")

# Kafka's transactional.id.expiration.ms.
DEFAULT_NAME_EXPIRATION_MS = 7 * 24 * 3600 * 1000
DEFAULT_MAX_NAMES = 100_000
# A write refreshes its name at most this often (a fraction of the expiry).
TOUCH_FRACTION = 10
# Names forgotten per metadata command.
EXPIRE_BATCH = 1000


class MetadataProposer(Protocol):
    """What the manager needs of the cluster node (ClusterNode is one)."""

    id: int
    image: MetadataImage

    def new_request_id(self) -> str: ...

    def is_controller(self) -> bool: ...

    async def propose(self, command: Command, timeout_s: float = ...) -> int: ...

    async def propose_tracked(self, make: Callable[[], Command],
                              timeout_s: float = ...) -> MetadataImage: ...

BLOCK_SIZE = 1000


class ProducerIdManager:
    def __init__(self, cluster: MetadataProposer, block_size: int = BLOCK_SIZE,
                 name_expiration_ms: int = DEFAULT_NAME_EXPIRATION_MS,
                 max_names: int = DEFAULT_MAX_NAMES) -> None:
        self.cluster = cluster
        self.block_size = block_size
        self.name_expiration_ms = name_expiration_ms
        self.max_names = max_names
        self._next = 0
        self._end = 0  # the block is used up when _next reaches _end
        self._lock = asyncio.Lock()
        # producer id -> name, of the image's named producers (rebuilt when they change)
        self._names_of: tuple[ProducerIds | None, dict[int, str]] = (None, {})
        # producer id -> when this broker last said it wrote (wall clock ms)
        self._touched: dict[int, int] = {}
        self._touching: set[asyncio.Task[None]] = set()

    async def init(self, name: str | None,
                   resume: tuple[int, int] | None = None) -> tuple[int, int]:
        """(producer id, epoch) for a new producer instance; for a named one initialising
        again, ``resume`` is the identity it had (PRODUCER_FENCED if no longer current)."""
        if name:
            return await self._init_named(name, resume)
        async with self._lock:
            if self._next >= self._end:
                await self._reserve_block()
            pid = self._next
            self._next += 1
            return pid, 0

    async def _reserve_block(self) -> None:
        cluster = self.cluster
        image = await cluster.propose_tracked(
            lambda: AllocateProducerIds(cluster.id, self.block_size, cluster.new_request_id()))
        first, count = image.producers.blocks[cluster.id]
        self._next, self._end = first, first + count

    async def _init_named(self, name: str, resume: tuple[int, int] | None) -> tuple[int, int]:
        if len(name) > MAX_NAME_LENGTH:
            raise invalid_request(
                f"producer_name is {len(name)} characters long; at most {MAX_NAME_LENGTH}")
        cluster = self.cluster
        named_now = cluster.image.producers.named
        if name not in named_now and len(named_now) >= self.max_names:
            raise BrokerError(
                Reason.TOO_MANY_PRODUCER_NAMES,
                f"the cluster has {len(named_now)} producer names, the most it keeps; "
                "reuse a name, or wait for idle ones to expire", {"limit": str(self.max_names)})
        expected_id, expected_epoch = resume if resume is not None else (-1, -1)
        # The image just after this instance's own command: a later instance's epoch is
        # higher and fences this one when it writes.
        image = await cluster.propose_tracked(
            lambda: InitNamedProducer(name, cluster.new_request_id(), expected_id,
                                      expected_epoch, clock.time_ms()))
        named = image.producers.named.get(name)
        retried = (resume is not None and named is not None
                   and (named.producer_id, named.resumed_from) == resume)
        if named is None or (named.init_offset != image.last_offset and not retried):
            # Our command changed nothing: another instance took the name since.
            current = named.epoch if named is not None else -1
            raise BrokerError(
                Reason.PRODUCER_FENCED, f"producer name {clip(name)!r} is at epoch {current}: this "
                f"instance (producer {expected_id}, epoch {expected_epoch}) was fenced by a "
                "newer one and may not take the name back",
                {"producer_id": str(expected_id), "producer_epoch": str(expected_epoch),
                 "current_epoch": str(current)})
        return named.producer_id, named.epoch

    # ---------------------------------------------------------------- name expiry
    def note_write(self, producer_id: int) -> None:
        """A partition of this broker took a write of `producer_id` (any front end calls
        this): a named producer's name is then in use, and says so now and then."""
        if producer_id < 0:
            return
        producers = self.cluster.image.producers
        if producers.epochs.get(producer_id) is None:
            return  # not a named producer
        now = clock.time_ms()
        if now - self._touched.get(producer_id, 0) < self.name_expiration_ms // TOUCH_FRACTION:
            return
        if self._names_of[0] is not producers:
            self._names_of = (producers, {p.producer_id: n for n, p in producers.named.items()})
        name = self._names_of[1].get(producer_id)
        if name is None:
            return
        self._touched[producer_id] = now
        task = asyncio.get_running_loop().create_task(
            self._propose_quietly(TouchNamedProducer(name, producer_id, now)))
        self._touching.add(task)
        task.add_done_callback(self._touching.discard)

    async def _propose_quietly(self, command: Command) -> None:
        try:
            await self.cluster.propose(command)
        except BrokerError as exc:  # the next write (or expiry pass) tries again
            log.debug("%s not proposed: %s", type(command).__name__, exc.message)

    def idle_names(self, now_ms: int) -> list[str]:
        """The names idle longer than the expiry (at most a batch of them)."""
        before = now_ms - self.name_expiration_ms
        idle = [n for n, p in self.cluster.image.producers.named.items()
                if p.last_used_ms < before]
        return idle[:EXPIRE_BATCH]

    async def expire_once(self) -> int:
        """On the controller: forgets the idle names; how many were."""
        if not self.cluster.is_controller():
            return 0
        now = clock.time_ms()
        idle = self.idle_names(now)
        if idle:
            await self._propose_quietly(
                ExpireNamedProducers(tuple(idle), now - self.name_expiration_ms))
            # Writes of a forgotten producer id no longer refresh anything.
            self._touched.clear()
        return len(idle)

    async def expiry_loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.expire_once()
