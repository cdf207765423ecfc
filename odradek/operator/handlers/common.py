"""Helpers the handlers share: broker errors as conditions, Events, status patches."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import kopf

from odradek.client import Admin, OdradekError
from odradek.operator.conditions import Outcome, set_condition, worth_an_event

T = TypeVar("T")


def camel(reason: str) -> str:
    """INVALID_CONFIG -> InvalidConfig: a broker reason as a condition reason."""
    return "".join(part.capitalize() for part in reason.split("_")) or "Unknown"


def refused(exc: OdradekError) -> Outcome:
    return Outcome("False", camel(exc.reason), f"the brokers refused: {exc.message}")


async def call(step: Callable[[], Awaitable[T]], what: str) -> T:
    """Runs a broker call; a retriable failure (no broker answered, leader moving) is
    retried by kopf with a backoff, other errors are the caller's to report."""
    try:
        return await step()
    except OdradekError as exc:
        if exc.retriable:
            raise kopf.TemporaryError(f"{what}: {exc}", delay=5) from exc
        raise


async def ensure_scram_user(admin: Admin, name: str, password: str, new: bool) -> None:
    """The user exists in the brokers; a password `new` to them (its Secret made anew) is
    set even on a user that exists."""
    present = {d.name for d in await call(admin.list_users, "list users")}
    if name not in present:
        await call(lambda: admin.create_user(name, password), "create user")
    elif new:
        await call(lambda: admin.alter_user(name, password), "alter user")


def conclude(body: Any, status: Mapping[str, Any], patch: Any, outcome: Outcome,
             generation: int | None, **fields: Any) -> None:
    """Writes the Ready condition and other status fields; a new failure also becomes an
    Event on the resource (once, not at every resync)."""
    conditions = status.get("conditions") or []
    if worth_an_event(conditions, outcome):
        kopf.warn(body, reason=outcome.reason, message=outcome.message)
    patch.status["conditions"] = set_condition(conditions, "Ready", outcome, generation)
    if generation is not None:
        patch.status["observedGeneration"] = generation
    for key, value in fields.items():
        patch.status[key] = value
