"""A consumer group's membership and assignment: a pure state machine (the caller passes
the time and persists what changed).

Assignment is incremental and cooperative. The assignor gives a target per member; a
member is sent its target minus the partitions another member still owns. What a member
loses is "revoking" until it acknowledges that assignment (having stopped and committed);
only then are those partitions free to be sent to their new owner. Members whose
partitions do not change are sent nothing and keep working."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from odradek.broker.errors import BrokerError, Reason
from odradek.broker.groups.assignors import ASSIGNORS, DEFAULT_STRATEGY, TP
from odradek.broker.groups.records import GroupValue, MemberValue, OffsetValue

MIN_SESSION_TIMEOUT_MS = 1_000
MAX_SESSION_TIMEOUT_MS = 300_000
DEFAULT_SESSION_TIMEOUT_MS = 10_000
DEFAULT_MAX_POLL_INTERVAL_MS = 300_000
MAX_GROUP_ID = 255
# client, instance and member ids (a member id is a client's prefix and 13 characters)
MAX_MEMBER_FIELD = 2 * MAX_GROUP_ID


def group_error(reason: Reason, message: str, group: str, **extra: str) -> BrokerError:
    return BrokerError(reason, message, {"group": group, **extra})


def check_group_id(group_id: str) -> None:
    if not group_id or len(group_id) > MAX_GROUP_ID:
        raise BrokerError(Reason.INVALID_GROUP_ID,
                          f"group id must be 1 to {MAX_GROUP_ID} characters, "
                          f"got {len(group_id)}", {"group": group_id})


@dataclass
class Member:
    member_id: str
    instance_id: str
    client_id: str
    topics: frozenset[str]
    session_timeout_ms: int
    max_poll_interval_ms: int
    # What the member may be using: its last acknowledged assignment plus what was added
    # since. A partition is given to another member only once no member owns it.
    owned: set[TP] = field(default_factory=set)
    # The last assignment sent; owned - assigned is being revoked.
    assigned: set[TP] = field(default_factory=set)
    sent_generation: int = -1
    first_generation: int = 0
    connected: bool = False
    last_seen: float = 0.0
    polled_at: float = 0.0
    revoke_deadline: float | None = None
    disconnected_ms: int = 0  # wall clock, persisted; 0 while connected

    @property
    def revoking(self) -> set[TP]:
        return self.owned - self.assigned

    def to_value(self) -> MemberValue:
        return MemberValue(self.member_id, self.instance_id, self.client_id,
                           tuple(sorted(self.topics)), self.session_timeout_ms,
                           self.max_poll_interval_ms, tuple(sorted(self.owned)),
                           self.disconnected_ms, tuple(sorted(self.assigned)))


@dataclass
class JoinRequest:
    member_id: str
    instance_id: str
    client_id: str
    topics: frozenset[str]
    session_timeout_ms: int
    max_poll_interval_ms: int
    strategy: str
    # Kafka's consumer protocol (KIP-848, version 1 on) has the client choose its member
    # id for life: a new member keeps it instead of being given one.
    client_chose_id: bool = False


class Group:
    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.generation = 0
        self.strategy = DEFAULT_STRATEGY
        self.members: dict[str, Member] = {}
        self.offsets: dict[TP, OffsetValue] = {}
        self._target: dict[str, set[TP]] = {}
        # Partitions taken from every member while an offset reset waits to be applied
        # (a reset of a live group); kept in memory only: a new coordinator has none.
        self.held: set[TP] = set()

    # --------------------------------------------------------------------- views
    @property
    def state(self) -> str:
        if not self.members:
            return "EMPTY"
        if any(m.revoking or m.assigned != self._target.get(m.member_id, set())
               for m in self.members.values()):
            return "RECONCILING"
        return "STABLE"

    def holds_released(self) -> bool:
        """Does no member own a held partition any more (all revocations acknowledged)?"""
        return not any(m.owned & self.held for m in self.members.values())

    def owner_of(self, tp: TP) -> str | None:
        for member in self.members.values():
            if tp in member.owned:
                return member.member_id
        return None

    def to_value(self) -> GroupValue:
        return GroupValue(self.generation, self.strategy,
                          tuple(m.to_value() for _, m in sorted(self.members.items())))

    @classmethod
    def from_value(cls, group_id: str, value: GroupValue, now: float,
                   wall_ms: int) -> Group:
        """A group read back by a new coordinator: members are given one session timeout
        to reconnect (counted from when their stream broke, if it did before the move),
        and keep what they owned meanwhile."""
        group = cls(group_id)
        group.generation = value.generation
        group.strategy = value.strategy
        for mv in value.members:
            owned = set(mv.owned)
            assigned = owned if mv.assigned is None else set(mv.assigned) & owned
            gone_s = max(0, wall_ms - mv.disconnected_ms) / 1000 if mv.disconnected_ms else 0
            group.members[mv.member_id] = Member(
                mv.member_id, mv.instance_id, mv.client_id, frozenset(mv.topics),
                mv.session_timeout_ms, mv.max_poll_interval_ms, owned=set(owned),
                assigned=set(assigned), sent_generation=value.generation, connected=False,
                last_seen=now - gone_s, polled_at=now, disconnected_ms=mv.disconnected_ms,
                revoke_deadline=(now + mv.max_poll_interval_ms / 1000
                                 if assigned != owned else None))
        return group

    # ---------------------------------------------------------------- membership
    def join(self, request: JoinRequest, now: float) -> tuple[Member, str | None]:
        """Adds or resumes a member. Returns it and, when a static member took the place
        of a previous instance, the member id whose stream must be closed (itself).
        A resumed member's disconnected_ms is cleared: persist the group."""
        self._check_join(request)
        member = self.members.get(request.member_id) if request.member_id else None
        replaced: str | None = None
        if member is None and request.instance_id:
            member = next((m for m in self.members.values()
                           if m.instance_id == request.instance_id), None)
            if member is not None and member.connected:
                replaced = member.member_id
            if member is not None and request.client_chose_id and request.member_id:
                # The new instance keeps its own id and takes over what the old one held.
                del self.members[member.member_id]
                member.member_id = request.member_id
                self.members[member.member_id] = member
        if member is None:
            prefix = request.instance_id or request.client_id or "member"
            chosen = request.member_id if request.client_chose_id and request.member_id \
                else f"{prefix}-{uuid.uuid4().hex[:12]}"
            member = Member(chosen, request.instance_id,
                            request.client_id, request.topics, request.session_timeout_ms,
                            request.max_poll_interval_ms, first_generation=self.generation)
            self.members[member.member_id] = member
        if not any(m is not member for m in self.members.values()):
            self.strategy = request.strategy
        member.topics = request.topics
        member.session_timeout_ms = request.session_timeout_ms
        member.max_poll_interval_ms = request.max_poll_interval_ms
        member.client_id = request.client_id
        member.connected = True
        member.disconnected_ms = 0
        member.last_seen = member.polled_at = now
        return member, replaced

    def _check_join(self, request: JoinRequest) -> None:
        # They go into member ids, the offsets topic and log lines: bounded like group ids.
        for what, value in (("client_id", request.client_id),
                            ("instance_id", request.instance_id),
                            ("member_id", request.member_id),
                            ("strategy", request.strategy)):
            if len(value) > MAX_MEMBER_FIELD:
                raise group_error(Reason.INVALID_REQUEST, f"{what} is {len(value)} characters "
                                  f"long; at most {MAX_MEMBER_FIELD}", self.group_id)
        if request.strategy not in ASSIGNORS:
            raise group_error(Reason.INCONSISTENT_GROUP_PROTOCOL,
                              f"unknown assignment strategy {request.strategy!r}; use one of "
                              f"{', '.join(sorted(ASSIGNORS))}", self.group_id)
        others = [m for m in self.members.values() if m.member_id != request.member_id
                  and not (request.instance_id and m.instance_id == request.instance_id)]
        if others and request.strategy != self.strategy:
            raise group_error(Reason.INCONSISTENT_GROUP_PROTOCOL,
                              f"group {self.group_id!r} uses the {self.strategy} strategy; "
                              f"this member asked for {request.strategy}", self.group_id)
        if not MIN_SESSION_TIMEOUT_MS <= request.session_timeout_ms <= MAX_SESSION_TIMEOUT_MS:
            raise group_error(Reason.INVALID_SESSION_TIMEOUT,
                              f"session timeout must be between {MIN_SESSION_TIMEOUT_MS} and "
                              f"{MAX_SESSION_TIMEOUT_MS} ms, got {request.session_timeout_ms}",
                              self.group_id)
        if request.max_poll_interval_ms < 1:
            raise group_error(Reason.INVALID_REQUEST, "max poll interval must be positive",
                              self.group_id)

    def heartbeat(self, member_id: str, ms_since_poll: int, now: float) -> None:
        member = self.require(member_id)
        member.last_seen = now
        member.polled_at = now - max(0, ms_since_poll) / 1000

    def disconnected(self, member_id: str, now: float, wall_ms: int) -> bool:
        """The member's stream broke: it keeps its partitions for a session timeout.
        True if it was a member (then persist the group)."""
        member = self.members.get(member_id)
        if member is None:
            return False
        member.connected = False
        member.last_seen = now
        member.disconnected_ms = wall_ms
        return True

    def remove(self, member_id: str) -> bool:
        return self.members.pop(member_id, None) is not None

    def require(self, member_id: str) -> Member:
        member = self.members.get(member_id)
        if member is None:
            raise group_error(Reason.UNKNOWN_MEMBER_ID,
                              f"member {member_id!r} is not in group {self.group_id!r} "
                              "(it left or was removed after its session timeout)",
                              self.group_id,
                              member=member_id)
        return member

    def expired(self, now: float) -> list[tuple[str, str]]:
        """Members to remove now, each with why."""
        out = []
        for m in self.members.values():
            if now - m.last_seen > m.session_timeout_ms / 1000:
                out.append((m.member_id, "session timeout"))
            elif m.connected and now - m.polled_at > m.max_poll_interval_ms / 1000:
                out.append((m.member_id, "max poll interval exceeded"))
            elif m.revoke_deadline is not None and now > m.revoke_deadline:
                out.append((m.member_id, "revocation not acknowledged in time"))
        return out

    def acknowledge(self, member_id: str, generation: int) -> bool:
        """The member let go of what its assignment of `generation` took away. True when
        that freed partitions."""
        member = self.require(member_id)
        if generation != member.sent_generation or not member.revoking:
            return False
        member.owned = set(member.assigned)
        member.revoke_deadline = None
        return True

    # ---------------------------------------------------------------- assignment
    def reconcile(self, partitions: Mapping[str, int], now: float) -> dict[str, set[TP]]:
        """Recomputes the target and returns the assignments to send (member -> the full
        set it should own now), for the members whose assignment changed."""
        members = self.members
        subs = {m: members[m].topics for m in members}
        current = {m: members[m].owned for m in members}
        target = ASSIGNORS[self.strategy](subs, partitions, current) if members else {}
        self._target = target
        owners: dict[TP, str] = {}
        for m in members.values():
            for tp in m.owned:
                owners.setdefault(tp, m.member_id)
        changes: dict[str, set[TP]] = {}
        for member_id, member in sorted(members.items()):
            want = target.get(member_id, set()) - self.held
            desired = {tp for tp in want if owners.get(tp, member_id) == member_id}
            if desired != member.assigned:
                changes[member_id] = desired
        if changes:
            self.generation += 1
            for member_id, desired in changes.items():
                member = members[member_id]
                member.assigned = set(desired)
                member.owned |= desired
                member.sent_generation = self.generation
                member.revoke_deadline = (now + member.max_poll_interval_ms / 1000
                                          if member.revoking else None)
        return changes

    # ------------------------------------------------------------------- offsets
    def check_commit(self, member_id: str, generation: int, tps: list[TP]) -> None:
        """Fencing: a member commits only partitions it owns, with a generation it was
        given; a commit from outside the protocol only when the group has no members."""
        if not member_id:
            if self.members:
                raise group_error(Reason.NON_EMPTY_GROUP,
                    f"group {self.group_id!r} has {len(self.members)} member(s): only its "
                    "members may commit offsets", self.group_id)
            return
        member = self.require(member_id)
        if not member.first_generation <= generation <= self.generation:
            raise group_error(Reason.ILLEGAL_GENERATION,
                              f"generation {generation} is not one member {member_id!r} of "
                              f"group {self.group_id!r} was given (current "
                              f"{self.generation})", self.group_id, member=member_id)
        foreign = [tp for tp in tps if tp not in member.owned]
        if foreign:
            t, p = foreign[0]
            raise group_error(Reason.FENCED_MEMBER,
                              f"member {member_id!r} does not own partition {p} of topic "
                              f"{t!r} (it was reassigned)", self.group_id, member=member_id,
                              topic=t, partition=str(p))
