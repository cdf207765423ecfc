"""Cluster handlers: apply the rendered objects, read readiness back from the
StatefulSet. A scale-down drains the brokers that go before the StatefulSet shrinks.
Leadership-aware rolling restarts are not built: the StatefulSet's own RollingUpdate rolls
the pods when the config hash changes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import kopf

from odradek.client import OdradekError
from odradek.operator import cluster as cl
from odradek.operator import crds, kube
from odradek.operator.conditions import Outcome, set_condition
from odradek.operator.handlers.common import call, conclude, refused
from odradek.operator.metrics import reconciling
from odradek.operator.runtime import BROKERS, bootstrap_for, resync_seconds

RESOURCE = (crds.GROUP, crds.VERSION, crds.plural("Cluster"))


async def _balance(c: cl.ClusterSpec) -> str:
    """After a scale-up: moves partitions onto brokers that hold nothing yet."""
    admin = BROKERS.admin(bootstrap_for(c.namespace, {"clusterRef": c.name}))
    try:
        md = await admin.metadata()
    except OdradekError:
        return ""  # no broker answers yet: the next resync looks again
    ids = [b.id for b in md.brokers if b.id < c.brokers]
    placements = [(t.name, p.partition, tuple(p.replicas)) for t in md.topics
                  for p in t.partitions]
    moving = any(p.target_replicas for t in md.topics for p in t.partitions)
    if moving or len(ids) < c.brokers or not cl.needs_balance(placements, ids):
        return "moving partitions" if moving else ""
    moves = cl.balance_moves(placements, ids)
    for topic, partition, replicas in moves:
        await call(lambda t=topic, p=partition, r=replicas:  # type: ignore[misc]
                   admin.reassign_partition(t, p, list(r)), "reassign")
    return f"moving {len(moves)} partitions onto new brokers" if moves else ""


async def _scale(c: cl.ClusterSpec, current: int | None) -> cl.ScalePlan:
    if current is None or c.brokers >= current:
        return cl.ScalePlan(c.brokers, waiting=await _balance(c) if current else "")
    admin = BROKERS.admin(bootstrap_for(c.namespace, {"clusterRef": c.name}))
    try:
        md = await call(admin.metadata, "metadata")
        parts = [p for t in md.topics for p in t.partitions]
        hosted = Counter(b for p in parts for b in p.replicas)
        plan = cl.scale_plan(c, current, hosted, max((len(p.replicas) for p in parts),
                                                     default=0))
        moving = {b for p in parts if p.target_replicas for b in p.replicas}
        for broker in plan.drain:
            if broker not in moving:  # a drain under way is not planned again
                await call(lambda b=broker: admin.drain_broker(b), "drain")  # type: ignore[misc]
    except OdradekError as exc:
        return cl.ScalePlan(current, refused=refused(exc))
    return plan


async def reconcile(body: Any, spec: Any, status: Any, meta: Any, namespace: str, name: str,
                    patch: Any) -> None:
    generation = meta.get("generation")
    async with reconciling("Cluster") as tally, BROKERS.lock(meta.get("uid", name)):
        try:
            c = cl.desired(spec, name, namespace)
        except (cl.SpecError, ValueError) as exc:
            tally.fail("InvalidSpec")
            conclude(body, status, patch, Outcome("False", "InvalidSpec", str(exc)), generation)
            return
        sts = await kube.read("StatefulSet", namespace, name)
        scale = await _scale(c, (sts or {}).get("spec", {}).get("replicas"))
        for obj in cl.render(c, body, scale.replicas):
            await kube.apply(namespace, obj)
        state = cl.state_of(await kube.read("StatefulSet", namespace, name))
        outcomes = cl.conditions(c, state)
        if scale.waiting:
            outcomes["Reconciling"] = Outcome(
                "True", "Draining" if scale.drain else "Balancing", scale.waiting)
        if scale.refused:
            tally.fail(scale.refused.reason)
            outcomes["Reconciling"] = scale.refused
        conclude(body, status, patch, scale.refused or outcomes["Ready"], generation,
                 brokers=c.brokers, readyBrokers=state.ready, bootstrap=cl.bootstrap(c))
        conds = patch.status["conditions"]
        for type_ in ("Reconciling", "Degraded"):
            conds = set_condition(conds, type_, outcomes[type_], generation)
        patch.status["conditions"] = conds


@kopf.on.create(*RESOURCE, id="cluster-create")
@kopf.on.update(*RESOURCE, id="cluster-update", field="spec")
@kopf.on.resume(*RESOURCE, id="cluster-resume")  # type: ignore[arg-type]
async def on_change(body: Any, spec: Any, status: Any, meta: Any, namespace: str, name: str,
                    patch: Any, **_: Any) -> None:
    await reconcile(body, spec, status, meta, namespace, name, patch)


@kopf.timer(*RESOURCE, id="cluster-resync", interval=resync_seconds(),  # type: ignore[arg-type]
            initial_delay=resync_seconds())
async def resync(body: Any, spec: Any, status: Any, meta: Any, namespace: str, name: str,
                 patch: Any, **_: Any) -> None:
    """Puts back objects changed by hand and refreshes readiness."""
    await reconcile(body, spec, status, meta, namespace, name, patch)
