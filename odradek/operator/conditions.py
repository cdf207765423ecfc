"""Status conditions in the Kubernetes convention, as plain dicts (no kopf here)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Condition = dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What one reconcile concluded: the Ready condition's status, reason and message."""

    status: str  # "True", "False" or "Unknown"
    reason: str
    message: str = ""

    @property
    def ready(self) -> bool:
        return self.status == "True"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(conditions: Sequence[Condition], type_: str, outcome: Outcome,
                  generation: int | None, at: str | None = None) -> list[Condition]:
    """The conditions with `type_` set to `outcome`. lastTransitionTime moves only when
    the status changes, as kubectl wait and people reading `describe` expect."""
    old = next((c for c in conditions if c.get("type") == type_), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == outcome.status else None
    new: Condition = {
        "type": type_, "status": outcome.status, "reason": outcome.reason,
        "message": outcome.message, "lastTransitionTime": since or at or now(),
    }
    if generation is not None:
        new["observedGeneration"] = generation
    rest = [c for c in conditions if c.get("type") != type_]
    return [*rest, new]


def get_condition(conditions: Sequence[Condition] | None, type_: str) -> Condition | None:
    return next((c for c in conditions or () if c.get("type") == type_), None)


def worth_an_event(conditions: Sequence[Condition] | None, outcome: Outcome,
                   type_: str = "Ready") -> bool:
    """A failure is announced as an Event once, when it first shows, not at every resync."""
    if outcome.status == "True":
        return False
    old = get_condition(conditions, type_)
    return old is None or (old.get("reason"), old.get("message")) != (
        outcome.reason, outcome.message)
