"""Majority arithmetic against brute force."""

from __future__ import annotations

from itertools import combinations

from hypothesis import given
from hypothesis import strategies as st

from odradek.raft.quorum import (
    VoteResult,
    committed_index,
    has_majority,
    majority,
    vote_result,
)
from odradek.raft.types import NO_INDEX

voter_sets = st.frozensets(st.integers(0, 6), min_size=1, max_size=7)


def test_majority() -> None:
    assert [majority(n) for n in range(1, 8)] == [1, 2, 2, 3, 3, 4, 4]


@given(voter_sets, st.dictionaries(st.integers(0, 8), st.integers(-1, 20)))
def test_committed_index_is_the_highest_a_majority_holds(
        voters: frozenset[int], match: dict[int, int]) -> None:
    def m(v: int) -> int:
        return match.get(v, NO_INDEX)
    need = majority(len(voters))
    held = [i for i in range(-1, 21) if sum(1 for v in voters if m(v) >= i) >= need]
    assert committed_index(voters, m) == max(held)


@given(voter_sets, st.frozensets(st.integers(0, 8)))
def test_has_majority(voters: frozenset[int], yes: frozenset[int]) -> None:
    assert has_majority(voters, yes.__contains__) == (len(voters & yes) * 2 > len(voters))


@given(voter_sets, st.dictionaries(st.integers(0, 8), st.booleans()))
def test_vote_result(voters: frozenset[int], votes: dict[int, bool]) -> None:
    result = vote_result(voters, votes)
    undecided = [v for v in voters if v not in votes]
    outcomes = set()
    for k in range(len(undecided) + 1):
        for yes in combinations(undecided, k):
            grants = sum(1 for v in voters if votes.get(v, v in yes))
            outcomes.add(grants >= majority(len(voters)))
    if outcomes == {True}:
        assert result == VoteResult.WON
    elif outcomes == {False}:
        assert result == VoteResult.LOST
    else:
        assert result == VoteResult.PENDING


def test_empty_voter_sets_decide_nothing() -> None:
    assert committed_index(frozenset(), lambda v: 5) == NO_INDEX
    assert not has_majority(frozenset(), lambda v: True)
