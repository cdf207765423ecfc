"""ConsumerGroup handlers: status from the coordinator, resets applied once per requestId.

A reset works on a live group: the coordinator takes the partitions from the members,
moves the offsets and assigns the partitions again. A refusal (a member that does not let
go in time: REBALANCE_IN_PROGRESS) becomes the lastReset outcome and a condition, and the
reset is tried again at each resync."""

from __future__ import annotations

from typing import Any

import kopf

from odradek.client import Admin, OdradekError
from odradek.client.errors import GroupNotFoundError
from odradek.operator import crds
from odradek.operator import groups as g
from odradek.operator.conditions import Outcome, now
from odradek.operator.handlers.common import call, conclude, refused
from odradek.operator.metrics import reconciling
from odradek.operator.runtime import BROKERS, NoBootstrap, bootstrap_for, resync_seconds

RESOURCE = (crds.GROUP, crds.VERSION, crds.plural("ConsumerGroup"))


async def _reset(admin: Admin, want: g.GroupSpec) -> int:
    """Dry runs of every call first, so that a refusal changes no offset."""
    changed = 0
    for dry_run in (True, False):
        for c in want.calls:
            changes = await call(lambda c=c, d=dry_run: admin.reset_group_offsets(  # type: ignore[misc]
                want.group_id, c.topics, dry_run=d, **c.target), "reset")
            changed += 0 if dry_run else sum(1 for x in changes if x.previous != x.offset)
    return changed


async def _describe(admin: Admin, group_id: str) -> Any | None:
    try:
        return await call(lambda: admin.describe_group(group_id), "describe group")
    except GroupNotFoundError:
        return None


async def reconcile(body: Any, spec: Any, status: Any, meta: Any, namespace: str, name: str,
                    patch: Any) -> None:
    generation = meta.get("generation")
    async with reconciling("ConsumerGroup") as tally, BROKERS.lock(meta.get("uid", name)):
        try:
            want = g.desired(spec, name)
            where = bootstrap_for(namespace, spec)
        except (g.SpecError, NoBootstrap) as exc:
            tally.fail("InvalidSpec")
            conclude(body, status, patch, Outcome("False", "InvalidSpec", str(exc)), generation)
            return
        admin = BROKERS.admin(where)
        result = Outcome("True", "Ready", f"group {want.group_id}")
        if g.reset_pending(want, status.get("lastReset")):
            last: dict[str, Any] = {"requestId": want.request_id, "time": now()}
            try:
                moved = await _reset(admin, want)
                last |= {"outcome": "Applied", "changes": moved,
                         "message": f"{moved} committed offsets moved"}
            except OdradekError as exc:
                result = Outcome("False", "ResetRefused", f"reset {want.request_id}: "
                                 f"{refused(exc).message} ({exc.reason})")
                last |= {"outcome": "Refused", "changes": 0, "message": result.message}
                tally.fail(exc.reason)
            patch.status["lastReset"] = last
        fields = g.group_status(await _describe(admin, want.group_id))
        conclude(body, status, patch, result, generation, groupId=want.group_id, **fields)


@kopf.on.create(*RESOURCE, id="group-create")
@kopf.on.update(*RESOURCE, id="group-update", field="spec")
@kopf.on.resume(*RESOURCE, id="group-resume")  # type: ignore[arg-type]
async def on_change(body: Any, spec: Any, status: Any, meta: Any, namespace: str, name: str,
                    patch: Any, **_: Any) -> None:
    await reconcile(body, spec, status, meta, namespace, name, patch)


@kopf.timer(*RESOURCE, id="group-resync", interval=resync_seconds(),  # type: ignore[arg-type]
            initial_delay=resync_seconds())
async def resync(body: Any, spec: Any, status: Any, meta: Any, namespace: str, name: str,
                 patch: Any, **_: Any) -> None:
    """Refreshes members and lag; retries a refused reset."""
    await reconcile(body, spec, status, meta, namespace, name, patch)
