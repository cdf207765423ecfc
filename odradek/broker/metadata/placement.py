"""Where replicas go: the controller's placement, leader balancing, draining and the
single-server membership steps of a reassignment. Pure and deterministic: the same input
always gives the same answer, whichever broker computes it.

Racks: a partition's replicas go to distinct racks while there are racks left; a broker
without a rack label counts as a rack of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Literal

from odradek.broker.metadata.commands import ReassignPartition
from odradek.broker.metadata.image import NO_LEADER, BrokerInfo, MetadataImage

RackKey = tuple[str, str]
Step = tuple[Literal["add", "remove"], int]


class PlacementError(ValueError):
    """No placement satisfies the request; the message says why."""


def rack_of(broker: BrokerInfo) -> RackKey:
    """The failure domain of a broker: its rack, or the broker itself when unlabelled."""
    return ("rack", broker.rack) if broker.rack else ("broker", str(broker.id))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def assign_replicas(
    brokers: Sequence[BrokerInfo],
    partitions: int,
    replication_factor: int,
    load: Mapping[int, int] | None = None,
    leader_load: Mapping[int, int] | None = None,
    first_partition: int = 0,
) -> list[tuple[int, ...]]:
    """Replica lists for `partitions` new partitions (numbered from `first_partition`), the
    first replica of each being its preferred leader.

    Only brokers that are not draining are used. Each partition takes the least loaded
    brokers (`load`: current replicas per broker, updated as partitions are placed), on
    distinct racks while racks remain; its preferred leader is the one of those with the
    fewest preferred leaderships (`leader_load`). On a fresh cluster without racks, replica
    counts per broker end up within one of each other; with racks of equal size, within
    two (rack diversity comes first); preferred leaderships within one."""
    if replication_factor < 1:
        raise PlacementError(f"replication factor must be at least 1, got {replication_factor}")
    if partitions < 0:
        raise PlacementError(f"number of partitions must not be negative, got {partitions}")
    available = sorted((b for b in brokers if not b.draining), key=lambda b: b.id)
    if replication_factor > len(available):
        draining = sum(1 for b in brokers if b.draining)
        note = f" ({_plural(draining, 'draining broker')} excluded)" if draining else ""
        raise PlacementError(
            f"replication factor {replication_factor} is larger than the "
            f"{_plural(len(available), 'broker')} available{note}")
    load = load or {}
    leader_load = leader_load or {}
    count = {b.id: load.get(b.id, 0) for b in available}
    leads = {b.id: leader_load.get(b.id, 0) for b in available}
    racks = {b.id: rack_of(b) for b in available}
    n = len(available)
    out: list[tuple[int, ...]] = []
    for p in range(first_partition, first_partition + partitions):
        # Ties are broken by a position that rotates with the partition number, so that
        # equal loads do not always favour the lowest broker ids.
        rotation = {b.id: (i - p) % n for i, b in enumerate(available)}
        # The preferred leader: the broker with the fewest leaderships among those that a
        # least-loaded choice of replicas could include.
        threshold = sorted(count.values())[replication_factor - 1]
        leader = min((b.id for b in available if count[b.id] <= threshold),
                     key=lambda b: (leads[b], count[b], rotation[b]))
        chosen = [leader]
        rack_uses: Counter[RackKey] = Counter([racks[leader]])
        for _ in range(replication_factor - 1):
            best = min((b.id for b in available if b.id not in chosen),
                       key=lambda b: (rack_uses[racks[b]], count[b], -leads[b], rotation[b]))
            chosen.append(best)
            rack_uses[racks[best]] += 1
        replicas = tuple(chosen)
        for b in replicas:
            count[b] += 1
        leads[leader] += 1
        out.append(replicas)
    return out


def preferred_leader_moves(
    image: MetadataImage, alive: Collection[int] | None = None,
) -> list[tuple[str, int, int, int]]:
    """(topic, partition, current leader, preferred leader) for every partition led by a
    broker other than its first replica, while that replica can lead: it is registered,
    not draining and (when `alive` is given) in `alive`. Partitions with no known leader
    are left to their election. Sorted by topic and partition."""
    moves = []
    for topic, index, part in image.iter_partitions():
        preferred = part.replicas[0]
        if part.leader == NO_LEADER or part.leader == preferred:
            continue
        broker = image.brokers.get(preferred)
        if broker is None or broker.draining or (alive is not None and preferred not in alive):
            continue
        moves.append((topic, index, part.leader, preferred))
    return moves


def drain_plan(image: MetadataImage, broker_id: int) -> list[ReassignPartition]:
    """Reassignments that move every replica off `broker_id`, one per partition that has
    (or is being reassigned to) a replica there. Each replica is replaced in place (so a
    preferred leader is replaced by the new preferred leader) by an available broker
    (registered, not draining, not already a replica), preferring a rack the partition's
    other replicas do not use, then the fewest replicas, then (for a preferred leader) the
    fewest preferred leaderships, then the lowest id. Raises PlacementError when some
    partition has no broker to move to (validation.validate_drain says so up front)."""
    candidates = [b for b in image.available_brokers() if b.id != broker_id]
    count = image.replica_counts()
    leads = image.preferred_leader_counts()
    plan = []
    for topic, index, part in image.iter_partitions():
        current = part.effective_replicas
        if broker_id not in current:
            continue
        choices = [b for b in candidates if b.id not in current]
        if not choices:
            raise PlacementError(
                f"cannot move partition {index} of topic {topic!r} off broker {broker_id}: "
                f"it has replication factor {len(current)} and no other available broker "
                f"is free to take the replica")
        position = current.index(broker_id)
        rack_uses = Counter(_rack_of_id(image, b) for b in current if b != broker_id)
        best = min(choices, key=lambda b: (
            rack_uses[rack_of(b)], count.get(b.id, 0),
            leads.get(b.id, 0) if position == 0 else 0, b.id)).id
        target = current[:position] + (best,) + current[position + 1:]
        count[best] = count.get(best, 0) + 1
        count[broker_id] = count.get(broker_id, 0) - 1
        if position == 0:
            leads[best] = leads.get(best, 0) + 1
            leads[broker_id] = leads.get(broker_id, 0) - 1
        plan.append(ReassignPartition(topic, index, target))
    return plan


def _rack_of_id(image: MetadataImage, broker_id: int) -> RackKey:
    broker = image.brokers.get(broker_id)
    return rack_of(broker) if broker is not None else ("broker", str(broker_id))


def reassignment_steps(
    current: Sequence[int], target: Sequence[int], leader: int | None = None,
) -> list[Step]:
    """Single-server membership changes that take a Raft group from `current` to `target`
    (as sets: a change of order alone needs no step). Each removal comes right after an
    addition while there are additions left, so the group never has fewer members than
    min(len(current), len(target)) nor more than max(len(current), len(target)) + 1; the
    leader (default: the first of `current`) is removed last of all. ValueError on an
    empty list or a duplicate."""
    _check_replica_list("current", current)
    _check_replica_list("target", target)
    if leader is None:
        leader = current[0]
    adds = [b for b in target if b not in current]
    removes = [b for b in current if b not in target and b != leader]
    steps: list[Step] = []
    for i in range(max(len(adds), len(removes))):
        if i < len(adds):
            steps.append(("add", adds[i]))
        if i < len(removes):
            steps.append(("remove", removes[i]))
    if leader in current and leader not in target:
        steps.append(("remove", leader))
    return steps


def apply_steps(current: Sequence[int], steps: Iterable[Step]) -> list[tuple[int, ...]]:
    """The member lists after each step (for checking a plan; order: members kept in
    place, additions appended)."""
    members = list(current)
    states = []
    for op, broker in steps:
        if op == "add":
            members.append(broker)
        else:
            members.remove(broker)
        states.append(tuple(members))
    return states


def _check_replica_list(what: str, replicas: Sequence[int]) -> None:
    if not replicas:
        raise ValueError(f"{what} replica list is empty")
    if len(set(replicas)) != len(replicas):
        dup = sorted(b for b, n in Counter(replicas).items() if n > 1)
        raise ValueError(f"{what} replica list {list(replicas)} names broker {dup[0]} twice")
