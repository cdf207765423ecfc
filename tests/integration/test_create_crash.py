"""Partitions created in one batch survive kill -9 of a broker in the middle of creating
them: after its restart the broker's metadata and its partition directories agree (a
directory, with the topic's id, for every partition assigned to it, and every partition
led)."""

from __future__ import annotations

import threading
from pathlib import Path

from odradek.client.errors import OdradekError
from odradek.client.sync import SyncAdmin
from tests.brokers import ClusterProcesses, wait_until

TOPIC = "many"
PARTITIONS = 200
WAIT_S = 90.0


def _dirs_of(data_dir: Path) -> set[int]:
    prefix = f"{TOPIC}-"
    return {int(p.name[len(prefix):]) for p in data_dir.glob(f"{prefix}*")
            if p.name[len(prefix):].isdigit()}


def test_kill9_mid_creation_keeps_metadata_and_directories_in_agreement(
        tmp_path: Path) -> None:
    cluster = ClusterProcesses(tmp_path).start()
    try:
        victim = cluster.brokers[2]
        errors: list[BaseException] = []

        def create() -> None:
            try:
                with SyncAdmin(cluster.brokers[0].address, request_timeout_ms=60_000) as admin:
                    admin.create_topic(TOPIC, PARTITIONS, 3)
            except OdradekError as exc:  # the call may see the victim go: the topic stays
                errors.append(exc)

        creator = threading.Thread(target=create, daemon=True)
        creator.start()
        # Killed once it has begun making the new partitions' directories, not after.
        wait_until(lambda: len(_dirs_of(victim.data_dir)) > 0, 60,
                   "the victim to start creating partitions", interval=0.005)
        victim.kill9()
        creator.join(WAIT_S)
        assert not creator.is_alive()
        victim.start()

        def agree() -> bool:
            try:
                with SyncAdmin(victim.address, request_timeout_ms=5_000) as admin:
                    topic = admin.describe_topic(TOPIC)
            except OdradekError:
                return False
            mine = {p.info.partition for p in topic.partitions if 2 in p.info.replicas}
            if len(topic.partitions) != PARTITIONS or _dirs_of(victim.data_dir) != mine:
                return False
            if any(p.info.leader < 0 for p in topic.partitions):
                return False
            return all((victim.data_dir / f"{TOPIC}-{i}" / "topic-id").read_text()
                       == topic.topic_id for i in mine)

        wait_until(agree, WAIT_S, "metadata and partition directories to agree", 0.2)
        assert len(_dirs_of(victim.data_dir)) == PARTITIONS  # RF=3 on 3 brokers: all here
    finally:
        cluster.stop()
