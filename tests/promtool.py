"""Finding Prometheus' binaries for tests: `make test` installs them (Debian package
prometheus) when it runs as root, so there a missing binary fails the test; elsewhere the
test is skipped."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is not None:
        return path
    message = (f"`{binary}` is not on PATH; install it with `apt-get install -y prometheus` "
               f"(make test does so when run as root)")
    if os.geteuid() == 0:
        pytest.fail(message)
    pytest.skip(message)
