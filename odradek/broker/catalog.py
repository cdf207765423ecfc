"""The topic catalog of a single broker: which topics exist, their partition counts and
config overrides, kept as one small JSON file per topic, replaced atomically."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TopicRecord:
    name: str
    topic_id: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def new(cls, name: str, partitions: int, replication_factor: int,
            configs: dict[str, str]) -> TopicRecord:
        return cls(name, uuid.uuid4().hex, partitions, replication_factor, dict(configs))


class Catalog:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def load(self) -> list[TopicRecord]:
        for leftover in self.directory.glob("*.tmp"):
            leftover.unlink()
        records = []
        for path in sorted(self.directory.glob("*.json")):
            data = json.loads(path.read_text())
            records.append(TopicRecord(**data))
        return records

    def save(self, record: TopicRecord) -> None:
        path = self.directory / f"{record.name}.json"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(record.__dict__, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.directory)

    def remove(self, name: str) -> None:
        (self.directory / f"{name}.json").unlink(missing_ok=True)
        _fsync_dir(self.directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
