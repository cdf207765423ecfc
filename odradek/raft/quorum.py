"""Majority arithmetic over a voter set, in one place: elections, commitment, CheckQuorum
and the hosts' in-sync and lease checks all ask the same questions."""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping

from odradek.raft.types import NO_INDEX


class VoteResult(enum.Enum):
    PENDING = 0
    WON = 1
    LOST = 2


def majority(voters: int) -> int:
    """How many of `voters` make a majority."""
    return voters // 2 + 1


def has_majority(voters: Collection[int], yes: Callable[[int], bool]) -> bool:
    """Does yes() hold for a majority of the voters? (Never for an empty set.)"""
    return bool(voters) and sum(1 for v in voters if yes(v)) >= majority(len(voters))


def committed_index(voters: Collection[int], match: Callable[[int], int]) -> int:
    """The highest index that a majority of voters holds (NO_INDEX for no voters)."""
    if not voters:
        return NO_INDEX
    matches = sorted((match(v) for v in voters), reverse=True)
    return matches[majority(len(voters)) - 1]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """WON once a majority granted, LOST once a majority can no longer grant."""
    need = majority(len(voters))
    granted = sum(1 for v, ok in votes.items() if ok and v in voters)
    rejected = sum(1 for v, ok in votes.items() if not ok and v in voters)
    if granted >= need:
        return VoteResult.WON
    if rejected > len(voters) - need:
        return VoteResult.LOST
    return VoteResult.PENDING
