"""Topic handlers: thin; the decisions are odradek.operator.topics'."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import kopf

from odradek.client import Admin, OdradekError, UnknownTopicOrPartitionError
from odradek.operator import crds
from odradek.operator import topics as t
from odradek.operator.conditions import Outcome
from odradek.operator.handlers.common import call, conclude, refused
from odradek.operator.metrics import reconciling
from odradek.operator.runtime import BROKERS, NoBootstrap, bootstrap_for, resync_seconds

RESOURCE = (crds.GROUP, crds.VERSION, crds.plural("Topic"))
log = logging.getLogger(__name__)


@kopf.index(*RESOURCE)  # type: ignore[arg-type]
def topic_claims(namespace: str, name: str, spec: Any, status: Any, meta: Any,
                 **_: Any) -> dict[tuple[str, str], t.Claim]:
    """Which Topic resources claim which (brokers, topic name)."""
    try:
        topic = t.desired(spec, name).name
        where = bootstrap_for(namespace, spec)
    except (t.SpecError, NoBootstrap):
        return {}
    owner = status.get("topicName") == topic
    return {(where, topic): t.Claim(not owner, str(meta.get("creationTimestamp") or ""),
                                    namespace, name)}


async def _describe(admin: Admin, name: str) -> t.TopicView | None:
    try:
        return t.observe(await call(lambda: admin.describe_topic(name), "describe"))
    except UnknownTopicOrPartitionError:
        return None


async def _run(admin: Admin, name: str, action: t.Action, validate_only: bool) -> None:
    match action:
        case t.Create(spec):
            await admin.create_topic(name, spec.partitions, spec.replication_factor,
                                     spec.config, validate_only=validate_only)
        case t.AlterConfigs(to_set, to_delete):
            await admin.alter_configs(name, to_set, to_delete, validate_only=validate_only)
        case t.AddPartitions(total):
            await admin.create_partitions(name, total, validate_only=validate_only)
        case t.Reassign(partition, replicas):
            await admin.reassign_partition(name, partition, list(replicas),
                                           validate_only=validate_only)


async def _execute(admin: Admin, name: str, actions: tuple[t.Action, ...]) -> None:
    # Every step is checked by the brokers before any is taken, so that a refusal (an
    # invalid config value, say) leaves the topic as it was.
    for validate_only in (True, False):
        for action in actions:
            await call(lambda a=action, v=validate_only: _run(admin, name, a, v),  # type: ignore[misc]
                       type(action).__name__)


async def reconcile(body: Any, spec: Any, status: Any, meta: Any, namespace: str, name: str,
                    patch: Any, topic_claims: Any) -> None:
    generation = meta.get("generation")
    async with reconciling("Topic") as tally, BROKERS.lock(meta.get("uid", name)):
        try:
            want = t.desired(spec, name)
            where = bootstrap_for(namespace, spec)
        except (t.SpecError, NoBootstrap) as exc:
            tally.fail("InvalidSpec")
            conclude(body, status, patch, Outcome("False", "InvalidSpec", str(exc)), generation)
            return
        first = t.winner(list(topic_claims.get((where, want.name), [])))
        if first is not None and (first.namespace, first.name) != (namespace, name):
            tally.fail("ResourceConflict")
            conclude(body, status, patch, Outcome(
                "False", "ResourceConflict", f"topic {want.name} is managed by Topic "
                f"{first.namespace}/{first.name}; nothing was changed"), generation)
            return
        admin = BROKERS.admin(where)
        view = await _describe(admin, want.name)
        brokers = [b.id for b in (await call(admin.metadata, "metadata")).brokers]
        plan = t.plan(want, view, brokers)
        result = plan.refused
        if result is None:
            try:
                await _execute(admin, want.name, plan.actions)
            except OdradekError as exc:
                result = refused(exc)
            if plan.actions:
                view = await _describe(admin, want.name)
        if result is None:
            result = t.outcome(want, view, plan.waiting)
        elif not result.ready:
            tally.fail(result.reason)
        owned = {"topicName": want.name, "topicId": view.topic_id} if view else {}
        conclude(body, status, patch, result, generation,
                 partitions=t.partitions_status(view), **owned)


@kopf.on.create(*RESOURCE, id="topic-create")
@kopf.on.update(*RESOURCE, id="topic-update", field="spec")
@kopf.on.resume(*RESOURCE, id="topic-resume")  # type: ignore[arg-type]
async def on_change(body: Any, spec: Any, status: Any, meta: Any, namespace: str, name: str,
                    patch: Any, topic_claims: Any, **_: Any) -> None:
    await reconcile(body, spec, status, meta, namespace, name, patch, topic_claims)


@kopf.timer(*RESOURCE, id="topic-resync", interval=resync_seconds(),  # type: ignore[arg-type]
            initial_delay=resync_seconds())
async def resync(body: Any, spec: Any, status: Any, meta: Any, namespace: str, name: str,
                 patch: Any, topic_claims: Any, **_: Any) -> None:
    """Reverts drift made outside the resource (a config changed with the CLI)."""
    await reconcile(body, spec, status, meta, namespace, name, patch, topic_claims)


@kopf.on.delete(*RESOURCE, id="topic-delete")  # type: ignore[arg-type]
async def on_delete(spec: Any, status: Any, meta: Any, namespace: str, name: str,
                    **_: Any) -> None:
    BROKERS.forget(meta.get("uid", name))
    topic = status.get("topicName")
    if not topic:
        return  # never owned a topic (a conflict, or creation was refused)
    if t.retained(meta.get("annotations")):
        log.info("Topic %s/%s deleted, topic %s retained (annotation)", namespace, name, topic)
        return
    async with reconciling("Topic"):
        admin = BROKERS.admin(bootstrap_for(namespace, spec))
        with contextlib.suppress(UnknownTopicOrPartitionError):  # gone already
            await call(lambda: admin.delete_topic(topic), "delete")
