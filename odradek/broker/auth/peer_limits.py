"""Caps per peer address on what a caller holds before it has shown who it is: streams
opened without credentials, SCRAM exchanges in progress. Protocol-free, so that every
front end counts the same way; a peer is its address as the ACLs write it."""

from __future__ import annotations

from odradek.broker.errors import BrokerError, Reason
from odradek.broker.logs import clip

MAX_ANONYMOUS_STREAMS_PER_PEER = 32
"""Unauthenticated streams one address may hold open at once (with authorization on)."""

MAX_OPEN_STREAMS_PER_PEER = 1024
"""With authorization off every caller is anonymous: only a backstop for memory."""

MAX_EXCHANGES_PER_PEER = 64
"""SCRAM exchanges one address may have in progress: a fraction of the broker's total
(sessions.MAX_EXCHANGES), so that one client cannot take every slot and lock out the
logins of others."""


class PeerCounts:
    """How many of something each peer holds, at most `per_peer` each."""

    def __init__(self, per_peer: int, what: str) -> None:
        self.per_peer = per_peer
        self.what = what
        self._held: dict[str, int] = {}

    def held(self, peer: str) -> int:
        return self._held.get(peer, 0)

    def total(self) -> int:
        return sum(self._held.values())

    def acquire(self, peer: str) -> None:
        """One more for `peer`; THROTTLED (RESOURCE_EXHAUSTED) when it has its cap."""
        held = self._held.get(peer, 0)
        if held >= self.per_peer:
            raise BrokerError(
                Reason.THROTTLED, f"{clip(peer, 64)} has {held} {self.what} open, the most "
                f"one address may have; close some (or authenticate) and retry",
                {"peer": clip(peer, 64), "limit": str(self.per_peer)})
        self._held[peer] = held + 1

    def release(self, peer: str) -> None:
        held = self._held.get(peer, 0) - 1
        if held > 0:
            self._held[peer] = held
        else:
            self._held.pop(peer, None)
