"""The synchronous wrappers take exactly the keywords of the asyncio clients, and one
ConnectionOptions stands for the TLS and login keywords."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from odradek.client import Admin, Consumer, Producer
from odradek.client.options import (
    AdminKwargs,
    ConnectionOptions,
    ConsumerKwargs,
    ProducerKwargs,
    client_cluster,
)


@pytest.mark.parametrize(("cls", "kwargs"), [
    (Producer, ProducerKwargs), (Consumer, ConsumerKwargs), (Admin, AdminKwargs)])
def test_typed_keywords_match_the_client(cls: Any, kwargs: Any) -> None:
    params = inspect.signature(cls.__init__).parameters
    keywords = {n for n, p in params.items() if p.kind == inspect.Parameter.KEYWORD_ONLY}
    assert set(kwargs.__annotations__) == keywords


def test_connection_options_make_the_cluster(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a channel is made")
    options = ConnectionOptions(tls_ca=ca, username="alice", password="secret")
    cluster = client_cluster("127.0.0.1:1", 5_000, None, options, ConnectionOptions())
    assert cluster.tls is not None and cluster.login is not None
    assert cluster.login.username == "alice"
    assert client_cluster("127.0.0.1:1", 5_000, None, None,
                          ConnectionOptions(tls=False)).tls is None


def test_connection_options_and_loose_keywords_are_not_mixed() -> None:
    with pytest.raises(ValueError, match="not both"):
        Admin("127.0.0.1:1", connection=ConnectionOptions(username="a", password="b"),
              tls_ca="ca.pem")
