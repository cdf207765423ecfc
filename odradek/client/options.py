"""How a client reaches the brokers (ConnectionOptions), and the keyword arguments of
Producer, Consumer and Admin as typed dictionaries, so that the synchronous wrappers take
exactly what the asyncio classes take (tests/unit/test_client_options.py keeps the two in
step)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from odradek.client.auth import ScramLogin
from odradek.client.connection import Cluster
from odradek.security.tls import ClientTLS

if TYPE_CHECKING:
    from odradek.client.partitioner import DefaultPartitioner
    from odradek.records import Compression

Path = str | os.PathLike[str]


@dataclass(frozen=True)
class ConnectionOptions:
    """TLS and SCRAM login, the same for every client of one application. A field left
    None falls back to its environment variable (ODRADEK_TLS, ODRADEK_TLS_CA,
    ODRADEK_TLS_CERT, ODRADEK_TLS_KEY, ODRADEK_TLS_SERVER_NAME, ODRADEK_USERNAME,
    ODRADEK_PASSWORD or ODRADEK_PASSWORD_FILE); `tls=False` forces plaintext.
    `tls_server_name`: the name checked in the brokers' certificates instead of the host
    of their addresses."""

    tls: bool | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    username: str | None = None
    password: str | None = None
    tls_server_name: str | None = None

    def cluster(self, bootstrap: str | Sequence[str] | None,
                request_timeout_ms: int) -> Cluster:
        return Cluster(bootstrap, request_timeout_ms=request_timeout_ms,
                       tls=ClientTLS.from_options(self.tls, self.tls_ca, self.tls_cert,
                                                  self.tls_key,
                                                  server_name=self.tls_server_name),
                       login=ScramLogin.from_options(self.username, self.password))


def client_cluster(bootstrap: str | Sequence[str] | None, request_timeout_ms: int,
                   cluster: Cluster | None, connection: ConnectionOptions | None,
                   loose: ConnectionOptions) -> Cluster:
    """The Cluster a client uses: the one given, else one made from `connection` or from
    the TLS and login keywords (`loose`), not both."""
    if cluster is not None:
        return cluster
    if connection is not None:
        if loose != ConnectionOptions():
            raise ValueError("give either connection=ConnectionOptions(...) or the tls_* "
                             "and username/password keywords, not both")
        return connection.cluster(bootstrap, request_timeout_ms)
    return loose.cluster(bootstrap, request_timeout_ms)


class ConnectionKwargs(TypedDict, total=False):
    tls: bool | None
    tls_ca: Path | None
    tls_cert: Path | None
    tls_key: Path | None
    username: str | None
    password: str | None
    connection: ConnectionOptions | None
    cluster: Cluster | None
    request_timeout_ms: int


class ProducerKwargs(ConnectionKwargs, total=False):
    linger_ms: float
    batch_size: int
    compression: str | Compression
    acks: str | int
    retries: int
    retry_backoff_ms: int
    retry_backoff_max_ms: int
    delivery_timeout_ms: int
    max_request_size: int
    buffer_memory: int
    partitioner: DefaultPartitioner | None
    enable_idempotence: bool | None
    producer_name: str | None
    max_batches_per_request: int | None


class ConsumerKwargs(ConnectionKwargs, total=False):
    max_bytes: int
    fetch_max_wait_ms: int
    fetch_min_bytes: int
    auto_offset_reset: str
    max_poll_records: int
    retry_backoff_ms: int
    retry_backoff_max_ms: int
    check_crcs: bool
    group_id: str | None
    group_instance_id: str
    client_id: str
    session_timeout_ms: int
    max_poll_interval_ms: int
    assignment_strategy: str
    enable_auto_commit: bool
    auto_commit_interval_ms: int


class AdminKwargs(ConnectionKwargs, total=False):
    """The connection keywords, and how long a call is retried while the cluster elects a
    controller (Kafka's default.api.timeout.ms)."""
    api_timeout_ms: int
