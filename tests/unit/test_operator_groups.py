"""ConsumerGroup domain logic: reset requests to client calls, once per requestId, status."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from odradek.operator import groups as g


def test_no_reset() -> None:
    want = g.desired({"topics": ["orders"]}, "billing")
    assert want == g.GroupSpec("billing", ("orders",))
    assert not g.reset_pending(want, None)


def test_reset_to_earliest_of_the_declared_topics() -> None:
    want = g.desired({"groupId": "b", "topics": ["orders", "refunds"],
                      "reset": {"requestId": "r1", "to": "earliest"}}, "x")
    assert want.calls == (g.ResetCall({"orders": [], "refunds": []}, {"to_earliest": True}),)


def test_reset_to_a_timestamp_of_some_partitions() -> None:
    want = g.desired({"reset": {"requestId": "r", "to": "timestamp",
                                "timestamp": "2024-06-01T00:00:00Z",
                                "topics": [{"topic": "orders", "partitions": [0, 2]}]}}, "b")
    assert want.calls == (g.ResetCall({"orders": [0, 2]}, {"to_timestamp_ms": 1717200000000}),)


def test_explicit_offsets_are_one_call_per_partition() -> None:
    want = g.desired({"reset": {"requestId": "r", "to": "offset", "topics": [
        {"topic": "orders", "offsets": [{"partition": 0, "offset": 5},
                                        {"partition": 1, "offset": 7}]}]}}, "b")
    assert want.calls == (g.ResetCall({"orders": [0]}, {"to_offset": 5}),
                          g.ResetCall({"orders": [1]}, {"to_offset": 7}))


@pytest.mark.parametrize("reset", [
    {"requestId": "r", "to": "timestamp"},
    {"requestId": "r", "to": "timestamp", "timestamp": "yesterday"},
    {"requestId": "r", "to": "offset"},
    {"requestId": "r", "to": "sideways"},
    {"to": "earliest"},
])
def test_bad_resets(reset: dict[str, object]) -> None:
    with pytest.raises(g.SpecError):
        g.desired({"topics": ["t"], "reset": reset}, "b")


def test_a_reset_is_applied_once_per_request_id() -> None:
    want = g.desired({"topics": ["t"], "reset": {"requestId": "r2", "to": "latest"}}, "b")
    assert g.reset_pending(want, None)
    assert g.reset_pending(want, {"requestId": "r1", "outcome": "Applied"})
    assert g.reset_pending(want, {"requestId": "r2", "outcome": "Refused"})
    assert not g.reset_pending(want, {"requestId": "r2", "outcome": "Applied"})


def test_status_from_a_description() -> None:
    desc = NS(state="STABLE", members=[NS(), NS()], partitions=[
        NS(topic="t", partition=1, committed_offset=5, log_end_offset=9, lag=4),
        NS(topic="t", partition=0, committed_offset=-1, log_end_offset=3, lag=-1)])
    status = g.group_status(desc)
    assert status["state"] == "STABLE" and status["members"] == 2 and status["lag"] == 4
    assert [p["partition"] for p in status["partitions"]] == [0, 1]
    assert g.group_status(None)["state"] == "UNKNOWN"
