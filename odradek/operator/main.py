"""The operator process (`odradek operator`): kopf with the handlers of every kind."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sequence
from typing import Any

import kopf

from odradek.operator import crds
from odradek.operator.runtime import BROKERS

log = logging.getLogger(__name__)
# Negative: below the 666 of `kopf run --dev` (a developer's operator still pauses the
# deployed ones) and below kopf's default 0; wide, so that a tie is all but impossible.
PRIORITY_RANGE = 2**31


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Progress and the last handled spec live in annotations: the status schemas are
    # structural, so anything kopf wrote there unasked would be pruned by the API server.
    settings.persistence.finalizer = f"{crds.GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=crds.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=crds.GROUP, key="last-handled-configuration")
    # Events for what needs a person (refusals, conflicts), not for every handler run.
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 4


@kopf.on.cleanup()
async def close(**_: Any) -> None:
    await BROKERS.close()


def run(namespaces: Sequence[str] = (), clusterwide: bool = False,
        liveness_port: int | None = None, metrics_port: int | None = None,
        peering: str | None = None) -> None:
    """Runs until SIGTERM/SIGINT. namespaces: names or globs; clusterwide: all of them.
    peering: the KopfPeering name for leader election between replicas (None: standalone)."""
    from odradek.operator.handlers import (  # noqa: F401 - importing registers them
        clusters,
        groups,
        topics,
        users,
    )

    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
        log.info("metrics on :%d/metrics", metrics_port)
    liveness = f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None
    kopf.run(clusterwide=clusterwide, namespaces=list(namespaces), liveness_endpoint=liveness,
             standalone=peering is None, peering_name=peering,
             priority=peering_priority() if peering else None)


def peering_priority() -> int:
    """A replica's kopf peering priority, drawn at start. kopf pauses every operator that
    sees a live peer of higher priority, and all of them at a tie; replicas of one
    Deployment share their flags, so a fixed priority would pause them all. Distinct
    random ones make the highest the one that works, and the next highest take over when
    it goes (at once when it exits cleanly, else when its keep-alive expires).
    ODRADEK_OPERATOR_PRIORITY pins it (an integer), to choose which replica works."""
    pinned = os.environ.get("ODRADEK_OPERATOR_PRIORITY")
    if pinned:
        try:
            return int(pinned)
        except ValueError:
            raise SystemExit(
                f"ODRADEK_OPERATOR_PRIORITY must be an integer, got {pinned!r}") from None
    return -1 - secrets.randbelow(PRIORITY_RANGE)
