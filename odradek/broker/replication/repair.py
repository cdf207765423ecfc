"""Repairing a replica whose log holds a corrupt batch (bytes changed at rest, found by
the CRC check of PartitionLog.read).

The batch is never served (the read raises). The replica then recovers as an unclean
start would: its log is cut at the batch's base offset and its RaftNode is made anew with
``lost_commit`` (the commit index it had), so until the leader has given it its log back
it neither votes nor campaigns. A leader first hands leadership to a caught-up follower
(TIMEOUT_NOW, so that a quiesced group's followers, which do not time out while this
broker is alive, get a leader at once) and waits for it up to an election timeout; it
never truncates committed entries while it leads."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from odradek.broker import clock
from odradek.broker.replication.host import RaftHost
from odradek.broker.replication.log_storage import PartitionRaftStorage
from odradek.broker.replication.replica import ReplicatedPartition
from odradek.raft import RaftNode
from odradek.storage import CorruptBatchError, OffsetOutOfRangeError

log = logging.getLogger("odradek.replication")

RETRY_S = 0.02
SCRUB_CHUNK = 1 << 20


@dataclass
class _Repair:
    offset: int
    handoff_until: float = math.nan  # set once a leader asked a follower to take over


class CorruptionRepair:
    def __init__(self, host: RaftHost, make_node: Callable[[PartitionRaftStorage], RaftNode],
                 alive: Callable[[int], bool], wait_s: float,
                 spawn: Callable[[Coroutine[Any, Any, None]], None] | None = None,
                 scrub_bytes_per_s: int = 0) -> None:
        self.host = host
        self._spawn = spawn
        self.scrub_bytes_per_s = scrub_bytes_per_s
        self._make_node = make_node
        self._alive = alive
        self.wait_s = wait_s  # how long a leader waits for its successor (election timeout)
        self._repairs: dict[str, _Repair] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        # Told the topic of each corrupt batch found (metrics).
        self.observer: Callable[[str], None] | None = None

    def watch(self, name: str, partition: ReplicatedPartition,
              storage: PartitionRaftStorage) -> None:
        """Has the partition's log report corrupt batches here (called on the loop)."""
        self._loop = asyncio.get_running_loop()

        def found(error: CorruptBatchError) -> None:
            loop = self._loop
            assert loop is not None
            # Reads run on the loop or in other threads, and inside RaftNode.step: the
            # repair runs later, on the loop, outside whatever read found it.
            loop.call_soon_threadsafe(self._found, name, partition, storage, error)

        partition.log.corruption_observer = found
        for error in storage.corrupt_at_load:
            log.warning("partition %s: %s; cut at load, repaired from the other replicas",
                        name, error)
            if self.observer is not None:
                self.observer(partition.topic)
        if self.scrub_bytes_per_s > 0 and self._spawn is not None:
            self._spawn(self._scrub(partition))

    async def _scrub(self, partition: ReplicatedPartition) -> None:
        """Reads back, at scrub_bytes_per_s, the segments this start did not scan: a clean
        start trusts sealed segments, and a corrupt batch in a follower that nobody reads
        would otherwise stay there, one replica fewer, until it led. What it finds goes
        to the observer like any read's."""
        plog = partition.log
        end = plog.active_segment_base  # the active segment was scanned at open
        offset = plog.log_start_offset
        loop = asyncio.get_running_loop()
        while offset < end and not partition.closed:
            try:
                result = await loop.run_in_executor(
                    None, functools.partial(plog.read, offset, SCRUB_CHUNK, end))
            except CorruptBatchError:
                return
            except OffsetOutOfRangeError:
                if offset >= plog.log_start_offset:
                    return  # cut below it meanwhile (a repair)
                offset = plog.log_start_offset  # retention went past it
                continue
            except ValueError:
                return  # closed
            if not result.data:
                return
            offset = result.next_offset
            await asyncio.sleep(len(result.data) / self.scrub_bytes_per_s)
        if offset >= end:
            log.debug("scrubbed %s up to offset %d", plog.directory, end)

    def _found(self, name: str, partition: ReplicatedPartition,
               storage: PartitionRaftStorage, error: CorruptBatchError) -> None:
        if self.observer is not None:
            self.observer(partition.topic)
        repair = self._repairs.get(name)
        if repair is not None:
            repair.offset = min(repair.offset, error.offset)
            return
        log.warning("partition %s: %s; cutting the log there and repairing it from the "
                    "other replicas", name, error)
        self._repairs[name] = _Repair(error.offset)
        self._step(name, partition, storage)

    def _step(self, name: str, partition: ReplicatedPartition,
              storage: PartitionRaftStorage) -> None:
        repair = self._repairs.get(name)
        group = self.host.groups.get(name)
        if repair is None or group is None or group.storage is not storage or partition.closed:
            self._repairs.pop(name, None)
            return
        loop = asyncio.get_running_loop()
        if self.host.busy(name):
            # A Ready of this group is being persisted: the log may not change under it.
            loop.call_later(RETRY_S, self._step, name, partition, storage)
            return
        node = group.node
        now = clock.monotonic()
        if node.is_leader():
            if math.isnan(repair.handoff_until):
                repair.handoff_until = now + self.wait_s
                target = self._successor(node)
                if target is not None:
                    node.transfer_leadership(target)
                    self.host.schedule(name)
            if now < repair.handoff_until:
                loop.call_later(self.host.tick_interval_s, self._step, name, partition,
                                storage)
                return
            # Nobody took over: resign all the same (a new node starts as a follower).
        del self._repairs[name]
        storage.drop_corrupt(repair.offset, node.commit_index)
        fresh = self._make_node(storage)
        partition.replace_node(fresh)
        group.node = fresh
        group.vote = (fresh.term, fresh.vote)
        self.host.schedule(name)
        log.warning("partition %s: log cut at offset %d (log end offset now %d); it neither "
                    "votes nor campaigns until it holds offset %d again", name, repair.offset,
                    storage.log.log_end_offset, storage.lost_commit)

    def _successor(self, node: RaftNode) -> int | None:
        """The live follower furthest ahead, if it holds everything committed (the
        transfer catches it up, then sends TIMEOUT_NOW)."""
        ready = [v for v in node.config.voters if v != node.id and self._alive(v)
                 and (p := node.progress.get(v)) is not None and p.match >= node.commit_index]
        return max(ready, key=lambda v: node.progress[v].match) if ready else None
