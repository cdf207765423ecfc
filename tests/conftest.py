from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.brokers import BrokerProcess

# `make test` runs property tests derandomized, so that a run is reproducible and CI cannot
# fail on a new random example; HYPOTHESIS_PROFILE=explore searches fresh examples.
settings.register_profile("odradek", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "odradek"))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path / "data").start()
    try:
        yield proc
    finally:
        proc.stop()
