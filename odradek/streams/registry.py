"""Who runs what: every instance of an application publishes, to the compacted topic
`<app>-instances` (one partition, keyed by instance id), the tasks it runs, the standby
copies it keeps, their lag and the address it serves interactive queries on; every
instance follows that topic, and so does `odradek streams describe`. A clean stop writes
a tombstone; a crashed instance's entry goes stale (it stops being refreshed) and is
ignored once older than STALE_MS."""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass, field

from odradek.streams.task import TaskId

PUBLISH_INTERVAL_S = 2.0
STALE_MS = 15_000  # several missed publications: the instance is gone


def registry_topic(application_id: str) -> str:
    return f"{application_id}-instances"


def task_name(task: TaskId) -> str:
    return f"{task[0]}_{task[1]}"


def parse_task(name: str) -> TaskId:
    group, partition = name.split("_")
    return int(group), int(partition)


@dataclass
class InstanceInfo:
    instance_id: str
    endpoint: str  # host:port of its query server; "" when it serves none
    active: dict[str, int] = field(default_factory=dict)  # task name -> input lag
    standby: dict[str, int] = field(default_factory=dict)  # task name -> changelog lag
    updated_ms: int = 0

    def encode(self) -> bytes:
        return json.dumps({"endpoint": self.endpoint, "active": self.active,
                           "standby": self.standby, "updated_ms": self.updated_ms},
                          sort_keys=True).encode()

    @classmethod
    def decode(cls, instance_id: str, data: bytes) -> InstanceInfo:
        d = json.loads(data)
        return cls(instance_id, d.get("endpoint", ""), dict(d.get("active", {})),
                   dict(d.get("standby", {})), int(d.get("updated_ms", 0)))

    def fresh(self, now_ms: int | None = None) -> bool:
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return now - self.updated_ms <= STALE_MS


def owners(instances: dict[str, InstanceInfo]) -> dict[TaskId, InstanceInfo]:
    """The live instance running each task (the most recently published claim wins while
    a hand-over is in flight)."""
    out: dict[TaskId, InstanceInfo] = {}
    for info in sorted(instances.values(), key=lambda i: i.updated_ms):
        if info.fresh():
            for name in info.active:
                out[parse_task(name)] = info
    return out


def standby_tasks(me: str, instances: dict[str, InstanceInfo], tasks: list[TaskId],
                  replicas: int) -> set[TaskId]:
    """The tasks this instance keeps a standby copy of: for each task with an owner, the
    `replicas` live instances after the owner in a ring of the sorted instance ids,
    started at an offset from the task so that standbys spread. Every instance computes
    the same placement from the same registry; a view that is briefly different only
    costs a copy kept or dropped early."""
    live = sorted(i for i, info in instances.items() if info.fresh() or i == me)
    found: set[TaskId] = set()
    owner_of = owners(instances)
    for task in tasks:
        owner = owner_of.get(task)
        if owner is None or owner.instance_id == me:
            continue
        others = [i for i in live if i != owner.instance_id]
        if not others:
            continue
        start = zlib.crc32(task_name(task).encode()) % len(others)
        chosen = [others[(start + k) % len(others)] for k in range(min(replicas, len(others)))]
        if me in chosen:
            found.add(task)
    return found
