"""Partition assignment strategies, computed on the coordinator. Pure functions.

Each takes the members' subscriptions, the partition count of every topic and what each
member holds now, and returns the target: every subscribed partition to exactly one
member subscribed to its topic. Only `sticky` looks at what members hold."""

from __future__ import annotations

from collections.abc import Callable, Mapping

TP = tuple[str, int]
Subscriptions = Mapping[str, frozenset[str]]  # member id -> topics
Assignment = dict[str, set[TP]]
Assignor = Callable[[Subscriptions, Mapping[str, int], Mapping[str, set[TP]]], Assignment]


def _empty(members: Subscriptions) -> Assignment:
    return {m: set() for m in members}


def _topics(members: Subscriptions, partitions: Mapping[str, int]) -> list[str]:
    return sorted({t for topics in members.values() for t in topics if t in partitions})


def range_assign(members: Subscriptions, partitions: Mapping[str, int],
                 current: Mapping[str, set[TP]] | None = None) -> Assignment:
    """Per topic, contiguous ranges of partitions to its subscribers in member-id order
    (the first `count % n` subscribers get one more)."""
    out = _empty(members)
    for topic in _topics(members, partitions):
        subscribers = sorted(m for m, topics in members.items() if topic in topics)
        per, extra = divmod(partitions[topic], len(subscribers))
        start = 0
        for i, member in enumerate(subscribers):
            size = per + (1 if i < extra else 0)
            out[member].update((topic, p) for p in range(start, start + size))
            start += size
    return out


def round_robin_assign(members: Subscriptions, partitions: Mapping[str, int],
                       current: Mapping[str, set[TP]] | None = None) -> Assignment:
    """Every partition of every topic in order, dealt to the members in turn (skipping
    those not subscribed to its topic)."""
    out = _empty(members)
    order = sorted(members)
    turn = 0
    for topic in _topics(members, partitions):
        for p in range(partitions[topic]):
            for step in range(len(order)):
                member = order[(turn + step) % len(order)]
                if topic in members[member]:
                    out[member].add((topic, p))
                    turn = (turn + step + 1) % len(order)
                    break
    return out


def sticky_assign(members: Subscriptions, partitions: Mapping[str, int],
                  current: Mapping[str, set[TP]] | None = None) -> Assignment:
    """Balanced (member loads within one of each other when subscriptions are the same)
    while moving as few partitions as possible from their current holders."""
    current = current or {}
    out = _empty(members)
    wanted = {(t, p) for t in _topics(members, partitions) for p in range(partitions[t])}
    eligible = {tp: sorted(m for m, topics in members.items() if tp[0] in topics)
                for tp in wanted}
    quota = -(-len(wanted) // len(members)) if members else 0  # ceil
    taken: set[TP] = set()
    # Keep what members hold (still wanted, still subscribed, not claimed twice), up to
    # the quota; the lowest partitions stay so the choice does not depend on set order.
    for member in sorted(members):
        keep = sorted(tp for tp in current.get(member, ()) if tp in wanted
                      and tp[0] in members[member] and tp not in taken)
        for tp in keep[:quota]:
            out[member].add(tp)
            taken.add(tp)
    # Free partitions go to the least loaded eligible member.
    for tp in sorted(wanted - taken):
        member = min(eligible[tp], key=lambda m: (len(out[m]), m))
        out[member].add(tp)
    _rebalance(out, eligible)
    return out


def _rebalance(out: Assignment, eligible: Mapping[TP, list[str]]) -> None:
    """Moves partitions from the most to the least loaded members while that narrows the
    gap; bounded by the number of partitions."""
    for _ in range(len(eligible) + 1):
        moved = False
        for giver in sorted(out, key=lambda m: (-len(out[m]), m)):
            for tp in sorted(out[giver]):
                takers = [m for m in eligible[tp] if len(out[m]) + 1 < len(out[giver])]
                if takers:
                    taker = min(takers, key=lambda m: (len(out[m]), m))
                    out[giver].discard(tp)
                    out[taker].add(tp)
                    moved = True
                    break
            if moved:
                break
        if not moved:
            return


ASSIGNORS: dict[str, Assignor] = {
    "range": range_assign,
    "roundrobin": round_robin_assign,
    "sticky": sticky_assign,
}
DEFAULT_STRATEGY = "sticky"
