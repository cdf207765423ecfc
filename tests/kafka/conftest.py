from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers import BrokerProcess, free_port


class KafkaBroker(BrokerProcess):
    """A broker with its Kafka listener on a free port."""

    def __init__(self, data_dir: Path, extra_args: list[str] | None = None) -> None:
        self.kafka_port = free_port()
        super().__init__(data_dir, extra_args=["--kafka-port", str(self.kafka_port),
                                               "--default-replication-factor", "1",
                                               *(extra_args or [])])

    @property
    def kafka_address(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"


@pytest.fixture
def kafka_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    proc = KafkaBroker(tmp_path / "data").start()
    try:
        yield proc
    finally:
        proc.stop()
