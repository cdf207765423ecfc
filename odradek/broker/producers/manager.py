"""Hands out producer ids and epochs (InitProducerId), on any broker.

A producer without a name gets the next id of this broker's block, a block being reserved
through the metadata log (AllocateProducerIds) when the last one is used up, so most
requests need no round trip to the controller; ids of a block a broker did not hand out
before it restarted are simply never used. A named producer goes through the metadata
log every time (InitNamedProducer): its id stays, its epoch goes up by one, and the
partitions refuse the older epochs from then on (PRODUCER_FENCED).

A block or an epoch counts only when the command applied carries this request's own id
(ClusterNode.propose_tracked): the offset a lost proposal was given may hold another
command, and the image then still shows this broker's previous block."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from odradek.broker.errors import BrokerError, Reason, invalid_request
from odradek.broker.metadata.commands import AllocateProducerIds, Command, InitNamedProducer
from odradek.broker.metadata.image import MetadataImage
from odradek.broker.metadata.producer_ids import MAX_NAME_LENGTH


class MetadataProposer(Protocol):
    """What the manager needs of the cluster node (ClusterNode is one)."""

    id: int

    def new_request_id(self) -> str: ...

    async def propose_tracked(self, make: Callable[[], Command],
                              timeout_s: float = ...) -> MetadataImage: ...

BLOCK_SIZE = 1000


class ProducerIdManager:
    def __init__(self, cluster: MetadataProposer, block_size: int = BLOCK_SIZE) -> None:
        self.cluster = cluster
        self.block_size = block_size
        self._next = 0
        self._end = 0  # the block is used up when _next reaches _end
        self._lock = asyncio.Lock()

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
        expected_id, expected_epoch = resume if resume is not None else (-1, -1)
        # The image just after this instance's own command: a later instance's epoch is
        # higher and fences this one when it writes.
        image = await cluster.propose_tracked(
            lambda: InitNamedProducer(name, cluster.new_request_id(), expected_id,
                                      expected_epoch))
        named = image.producers.named.get(name)
        retried = (resume is not None and named is not None
                   and (named.producer_id, named.resumed_from) == resume)
        if named is None or (named.init_offset != image.last_offset and not retried):
            # Our command changed nothing: another instance took the name since.
            current = named.epoch if named is not None else -1
            raise BrokerError(
                Reason.PRODUCER_FENCED, f"producer name {name!r} is at epoch {current}: this "
                f"instance (producer {expected_id}, epoch {expected_epoch}) was fenced by a "
                "newer one and may not take the name back",
                {"producer_id": str(expected_id), "producer_epoch": str(expected_epoch),
                 "current_epoch": str(current)})
        return named.producer_id, named.epoch
