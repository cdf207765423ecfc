"""What the metadata Raft group's host tells the cluster node: committed entries and
snapshots to apply, and when this broker becomes the controller."""

from __future__ import annotations

import logging
from typing import Protocol

from odradek.raft import Ready, Role

log = logging.getLogger("odradek.broker")


class _Node(Protocol):
    id: int

    def install_snapshot(self, data: bytes) -> None: ...

    def apply_committed(self, ready: Ready) -> None: ...


class MetaListener:
    def __init__(self, cluster: _Node) -> None:
        self.cluster = cluster
        self._role = Role.FOLLOWER

    def on_persisted(self, ready: Ready) -> None:
        """Nothing to do: metadata changes take effect when committed (on_ready)."""

    def heard_from(self, node_id: int) -> None:
        """Nothing to do: the metadata group needs no in-sync count."""

    def acknowledged(self, node_id: int) -> None:
        """Nothing to do: the metadata image is read from what is applied, not led."""

    def on_ready(self, ready: Ready) -> None:
        if ready.snapshot_to_apply is not None and ready.snapshot_to_apply.data:
            self.cluster.install_snapshot(ready.snapshot_to_apply.data)
        if ready.committed_entries:
            self.cluster.apply_committed(ready)
        if ready.soft_state.role != self._role:
            self._role = ready.soft_state.role
            if self._role == Role.LEADER:
                log.info("broker %d is now the controller", self.cluster.id)
