"""QuietGroups files quiesced groups by leader, so a tick can wake one silent leader's
groups at once without a pass over every group."""

from odradek.broker.replication.quiet import QuietGroups


def test_groups_are_filed_by_their_leader() -> None:
    quiet = QuietGroups()
    quiet.add("a", 1)
    quiet.add("b", 2)
    quiet.add("c", 1)
    quiet.add("d", None)
    assert sorted(quiet) == ["a", "b", "c", "d"]
    assert len(quiet) == 4
    assert set(quiet.leaders()) == {1, 2, None}
    assert quiet.wake_led_by(1) == ["a", "c"]
    assert "a" not in quiet and "c" not in quiet
    assert set(quiet.leaders()) == {2, None}
    assert quiet.wake_led_by(1) == []


def test_a_group_filed_again_moves_to_its_new_leader() -> None:
    quiet = QuietGroups()
    quiet.add("a", 1)
    quiet.add("a", 3)
    assert len(quiet) == 1
    assert quiet.leaders() == [3]
    assert quiet.wake_led_by(1) == []
    assert quiet.wake_led_by(3) == ["a"]


def test_discard_says_whether_the_group_was_quiet() -> None:
    quiet = QuietGroups()
    quiet.add("a", 1)
    assert quiet.discard("a") is True
    assert quiet.discard("a") is False
    assert quiet.leaders() == []  # no empty file left behind for broker 1
