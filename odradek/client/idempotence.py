"""The idempotent producer's identity: producer id, epoch and per-partition sequences.

The id and epoch come from InitProducerId, asked for lazily before the first batch is
sent. Each batch is stamped once, before its first send, with the partition's next
sequence; retries resend the same bytes, so the partition leader recognises a batch it
already stored and answers with the original offsets.

When a stamped batch fails for good (a gap the broker refused, a delivery timeout, any
error after which the batch may or may not be stored), the partition's sequence can no
longer continue: the identity is reset and the next batch asks for a new one (a fresh id,
or for a named producer its next epoch), whose sequences start at 0 everywhere."""

from __future__ import annotations

import asyncio
import random
import time

import grpc

from odradek.client.connection import Cluster
from odradek.client.errors import OdradekError, ProducerFencedError, from_rpc_error
from odradek.records import parse_header
from odradek.records.batch import set_producer
from odradek.v1 import odradek_pb2 as pb

SEQUENCE_MODULUS = 1 << 31
# A controller election can briefly leave the metadata log without a leader.
_INIT_RETRY_REASONS = frozenset({"NOT_CONTROLLER"})


class ProducerIdentity:
    def __init__(self, cluster: Cluster, name: str | None, timeout_s: float) -> None:
        self._cluster = cluster
        self.name = name
        self._timeout_s = timeout_s
        self.producer_id = -1
        self.epoch = -1
        # Bumped by every reset: a batch stamped under an older generation is not renumbered.
        self.generation = 0
        self._stale = True
        self._fenced: ProducerFencedError | None = None
        self._lock = asyncio.Lock()
        # (topic, partition) -> (generation, next sequence)
        self._sequences: dict[tuple[str, int], tuple[int, int]] = {}

    @property
    def fenced(self) -> ProducerFencedError | None:
        return self._fenced

    def fence(self, err: ProducerFencedError) -> None:
        self._fenced = err

    def reset(self, generation: int) -> None:
        """A batch stamped under `generation` failed for good: start a new identity."""
        if generation == self.generation and not self._stale:
            self._stale = True

    async def ensure(self) -> int:
        """The current generation, initialising the identity when needed."""
        if self._fenced is not None:
            raise self._fenced
        if not self._stale:
            return self.generation
        async with self._lock:
            if self._stale:
                await self._init()
                self.generation += 1
                self._stale = False
        return self.generation

    async def _init(self) -> None:
        request = pb.InitProducerIdRequest(producer_name=self.name or "")
        if self.name and self.producer_id >= 0:
            # Again, after a batch failed for good: only while no newer instance took the
            # name, else this instance is fenced (it must not fence its successor).
            request.resume = True
            request.producer_id = self.producer_id
            request.producer_epoch = self.epoch
        deadline = time.monotonic() + self._timeout_s
        attempt = 0
        while True:
            try:
                resp = await self._cluster.any_broker(
                    lambda address: self._cluster.broker_stub(address).InitProducerId(
                        request, timeout=self._timeout_s))
                break
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
            except OdradekError as exc:
                err = exc
            if isinstance(err, ProducerFencedError):
                self._fenced = err
                raise err
            attempt += 1
            delay = min(0.05 * 2 ** attempt, 1.0) * random.uniform(0.8, 1.2)
            if not (err.retriable or err.reason in _INIT_RETRY_REASONS) or (
                    time.monotonic() + delay > deadline):
                raise err
            await asyncio.sleep(delay)
        self.producer_id = int(resp.producer_id)
        self.epoch = int(resp.producer_epoch)

    def stamp(self, topic: str, partition: int, data: bytes) -> bytes:
        """Gives each batch in `data` the identity and the partition's next sequence."""
        key = (topic, partition)
        generation, seq = self._sequences.get(key, (self.generation, 0))
        if generation != self.generation:
            seq = 0
        buf = bytearray(data)
        view = memoryview(buf)
        pos = 0
        while pos < len(buf):
            header = parse_header(view, pos)
            set_producer(buf, pos, self.producer_id, self.epoch, seq)
            seq = (seq + header.record_count) % SEQUENCE_MODULUS
            pos += header.size
        self._sequences[key] = (self.generation, seq)
        return bytes(buf)
