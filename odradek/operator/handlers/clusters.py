"""Cluster handlers: apply the rendered objects, read readiness back from the
StatefulSet. Scaling with draining and leadership-aware rolling restarts are not built:
the StatefulSet's own RollingUpdate rolls the pods when the config hash changes."""

from __future__ import annotations

from typing import Any

import kopf

from odradek.operator import cluster as cl
from odradek.operator import crds, kube
from odradek.operator.conditions import Outcome, set_condition
from odradek.operator.handlers.common import conclude
from odradek.operator.metrics import reconciling
from odradek.operator.runtime import BROKERS, resync_seconds

RESOURCE = (crds.GROUP, crds.VERSION, crds.plural("Cluster"))


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
        for obj in cl.render(c, body):
            await kube.apply(namespace, obj)
        state = cl.state_of(await kube.read("StatefulSet", namespace, name))
        outcomes = cl.conditions(c, state)
        conclude(body, status, patch, outcomes["Ready"], generation, brokers=c.brokers,
                 readyBrokers=state.ready, bootstrap=cl.bootstrap(c))
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
