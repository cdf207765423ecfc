"""Cluster handlers: issue the TLS Secrets and the super user's, apply the rendered
objects, read readiness back from the StatefulSet, roll stale pods one at a time
(cluster.roll_plan). A scale-down drains the brokers that go before the StatefulSet
shrinks. A pod handler copies the node's rack label onto broker pods."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Any

import kopf

from odradek.client import OdradekError
from odradek.operator import cluster as cl
from odradek.operator import crds, external, kube, pki, superuser, users
from odradek.operator.conditions import Outcome, set_condition
from odradek.operator.handlers.common import call, conclude, ensure_scram_user, refused
from odradek.operator.metrics import reconciling
from odradek.operator.runtime import (
    BROKERS,
    bootstrap_for,
    resync_seconds,
    roll_timeout_seconds,
)

RESOURCE = (crds.GROUP, crds.VERSION, crds.plural("Cluster"))


@kopf.index(*RESOURCE)  # type: ignore[arg-type]
def cluster_cas(namespace: str, name: str, spec: Any, **_: Any) -> dict[tuple[str, str], str]:
    """The CA Secret of each Cluster whose CA the operator holds (tls on, no broker
    certificate of the user's own): it signs the certificates of that Cluster's tls Users."""
    tls = pki.tls_spec(spec, name)
    return {(namespace, name): tls.ca_secret_name} if tls and not tls.secret_name else {}


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


def _admin(c: cl.ClusterSpec) -> Any:
    return BROKERS.admin(bootstrap_for(c.namespace, {"clusterRef": c.name}))


async def _put_secret(namespace: str, body: dict[str, Any]) -> None:
    if not await kube.create_secret(namespace, body):
        await kube.replace_secret_data(namespace, body)


async def _tls(c: cl.ClusterSpec, owner: Any) -> Outcome | None:
    """Issues (or renews) the brokers' certificate from the CA, generating the CA when
    there is none, and has the operator's own client speak TLS to these brokers. An
    Outcome when a Secret it needs is unusable (then nothing is changed)."""
    assert c.tls is not None
    ns = c.namespace
    mounted = pki.mounted_secret(c.tls, c.name)
    if c.tls.secret_name is None:
        ca = await kube.read_secret(ns, c.tls.ca_secret_name)
        own = ca is None or ((ca.get("metadata") or {}).get("labels") or {}).get(
            "app.kubernetes.io/managed-by") == "odradek-operator"
        current = await kube.read_secret(ns, mounted)
        try:
            step = pki.plan(c.name, ns, ca, current, dt.datetime.now(dt.UTC), own_ca=own)
        except ValueError as exc:
            return Outcome("False", "TLSSecretInvalid",
                           f"Secret {c.tls.ca_secret_name}: {exc}")
        ref = cl.owner_reference(owner)
        if step.ca is not None:
            await _put_secret(ns, pki.secret_body(c.tls.ca_secret_name, ns, cl.labels(c),
                                                  ref, step.ca))
        if step.broker is not None:
            await _put_secret(ns, pki.secret_body(mounted, ns, cl.labels(c), ref,
                                                  step.broker))
    secret = await kube.read_secret(ns, mounted)
    files = {k: pki.decoded(secret, k) for k in ("ca.crt", "tls.crt", "tls.key")}
    if not all(files.values()):
        return Outcome("False", "TLSSecretInvalid", f"Secret {mounted} is missing or lacks "
                       "ca.crt, tls.crt or tls.key")
    await BROKERS.use_tls(bootstrap_for(ns, {"clusterRef": c.name}),
                          {k: v for k, v in files.items() if v}, cl.broker_host(c, 0))
    return None


async def _super_user(c: cl.ClusterSpec, owner: Any, running: bool) -> Outcome | None:
    """The super user's Secret, made once with a random password, and the operator's
    login as that user. A Secret made anew for brokers already running (deleted by hand,
    or brokers started before the operator made super users): their user is created or
    takes the new password first, through the operator's present client (the old login,
    the brokers' certificate with TLS, or its own credentials), and the Secret is written
    only once that worked."""
    ns, name = c.namespace, superuser.secret_name(c.name)
    where = bootstrap_for(ns, {"clusterRef": c.name})
    secret = await kube.read_secret(ns, name)
    password = users.password_of(secret) if secret else None
    if not password:
        password = users.new_password()
        if running:
            admin = BROKERS.admin(where)
            try:
                await ensure_scram_user(admin, superuser.USERNAME, password, new=True)
            except OdradekError as exc:
                return Outcome("False", "SuperUserUnset", f"Secret {name} is missing and "
                               f"its new password cannot be set: {exc.message}")
        await _put_secret(ns, superuser.secret_body(c.name, ns, cl.labels(c),
                                                    cl.owner_reference(owner), password,
                                                    cl.bootstrap(c)))
    await BROKERS.use_login(where, superuser.USERNAME, password)
    return None


async def _roll(c: cl.ClusterSpec) -> cl.RollStep:
    """One step of a rolling restart: the plan from the pods and the brokers' metadata."""
    pods = [s for p in await kube.list_pods(c.namespace, cl.labels(c))
            if (s := cl.pod_state(p, time.time())) is not None]
    try:
        md = await _admin(c).metadata()
        under = cl.under_replicated([(p.leader, p.replicas, p.in_sync_replicas)
                                     for t in md.topics for p in t.partitions])
    except OdradekError as exc:
        # Not knowing the replicas' state is no reason to restart anything.
        if any(p.config_hash != cl.config_hash(c) for p in pods):
            return cl.RollStep("wait", None, f"no broker answers: {exc.message}")
        under = 0
    step = cl.roll_plan(c, pods, under, roll_timeout_seconds())
    if step.action == "restart":
        assert step.ordinal is not None
        await kube.delete_pod(c.namespace, f"{c.name}-{step.ordinal}")
    return step


async def _configs(c: cl.ClusterSpec) -> Outcome | None:
    """spec.config made the brokers' cluster-wide topic defaults, live: an Outcome when
    they refuse it (nothing changed) or none answers yet."""
    admin = _admin(c)
    try:
        change = cl.config_change(await admin.describe_cluster_configs(), c.config)
        if change is not None:
            await admin.alter_cluster_configs(*change)
    except OdradekError as exc:
        if exc.retriable:
            return Outcome("True", "ApplyingConfig", f"config not applied yet: {exc.message}")
        return refused(exc)
    return None


async def _prune_external(c: cl.ClusterSpec, replicas: int) -> None:
    services = await kube.list_services(c.namespace, cl.labels(c))
    for name in external.stale_services(services, c.external, replicas):
        await kube.delete_service(c.namespace, name)


async def reconcile(body: Any, spec: Any, status: Any, meta: Any, namespace: str, name: str,
                    patch: Any) -> None:
    generation = meta.get("generation")
    async with reconciling("Cluster") as tally, BROKERS.lock(meta.get("uid", name)):
        sts = await kube.read("StatefulSet", namespace, name)
        try:
            c = cl.desired(spec, name, namespace, cl.voters_of(sts))
        except (cl.SpecError, ValueError) as exc:
            tally.fail("InvalidSpec")
            conclude(body, status, patch, Outcome("False", "InvalidSpec", str(exc)), generation)
            return
        unusable = await _tls(c, body) if c.tls else None
        if unusable is None and c.authorization:
            unusable = await _super_user(c, body, sts is not None)
        if unusable is not None:
            tally.fail(unusable.reason)
            conclude(body, status, patch, unusable, generation)
            return
        scale = await _scale(c, (sts or {}).get("spec", {}).get("replicas"))
        for obj in cl.render(c, body, scale.replicas):
            await kube.apply(namespace, obj)
        await _prune_external(c, scale.replicas)
        state = cl.state_of(await kube.read("StatefulSet", namespace, name))
        outcomes = cl.conditions(c, state)
        config = await _configs(c) if state.ready else None
        if config is not None and config.status == "False":
            tally.fail(config.reason)
            outcomes["Ready"] = config
        elif config is not None:
            outcomes["Reconciling"] = config
        if sts is not None and not scale.drain:
            roll = await _roll(c)
            if roll.action in ("restart", "wait") and roll.message:
                outcomes["Reconciling"] = Outcome("True", "RollingRestart", roll.message)
            elif roll.action == "stuck":
                tally.fail("BrokerNotBack")
                outcomes["Degraded"] = Outcome("True", "BrokerNotBack", roll.message)
        if scale.waiting:
            outcomes["Reconciling"] = Outcome(
                "True", "Draining" if scale.drain else "Balancing", scale.waiting)
        if scale.refused:
            tally.fail(scale.refused.reason)
            outcomes["Reconciling"] = scale.refused
        extra = {"superUserSecret": superuser.secret_name(c.name)} if c.authorization else {}
        conclude(body, status, patch, scale.refused or outcomes["Ready"], generation,
                 brokers=c.brokers, readyBrokers=state.ready, bootstrap=cl.bootstrap(c),
                 **extra)
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


@kopf.on.event("v1", "pods", annotations={cl.RACK_KEY_ANNOTATION: kopf.PRESENT})  # type: ignore[arg-type]
async def pod_rack(body: Any, namespace: str, name: str, **_: Any) -> None:
    """A scheduled broker pod gets its node's rack label as an annotation, which its init
    container waits for and the broker reads (ODRADEK_RACK) through the downward API."""
    node_name = (body.get("spec") or {}).get("nodeName")
    if not node_name or cl.RACK_ANNOTATION in ((body.get("metadata") or {}).get(
            "annotations") or {}):
        return
    rack = cl.rack_of(body, await kube.read_node(node_name))
    if rack is not None:
        await kube.annotate_pod(namespace, name, {cl.RACK_ANNOTATION: rack})
