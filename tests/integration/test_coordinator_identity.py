"""The group coordinator's own calls (log end offsets for lag, offsets for resets) run as
the broker, not as the anonymous caller of its own port (issue 11, item 3): on one broker
with authorization on, over plaintext and over TLS without client certificates, a super
user's DescribeGroup shows the real lag and its resets find the partitions' offsets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from odradek.client import Admin, Producer
from odradek.security.certs import Pki, make_pki
from odradek.security.tls import ClientTLS
from tests.brokers import BrokerProcess
from tests.integration.test_acl import (  # noqa: F401 - fixture
    ADMIN_PASSWORD,
    env_password,
    login_channel,
    secured_args,
    wait_for_login,
)
from tests.integration.test_group_acl import commit, coordinator_ready, groups

RECORDS = 10


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(params=["plaintext", "tls"])
async def broker(request: pytest.FixtureRequest, tmp_path: Path, pki: Pki,
                 env_password: None,  # noqa: F811 - the imported fixture
                 ) -> AsyncIterator[tuple[BrokerProcess, ClientTLS | None]]:
    tls = None
    extra = secured_args()
    if request.param == "tls":
        # No client certificates: the broker's own calls to its port would be anonymous.
        tls = ClientTLS(pki.ca)
        extra += ["--listener", "tls", "--tls-cert", str(pki.broker_cert), "--tls-key",
                  str(pki.broker_key), "--tls-ca", str(pki.ca), "--tls-client-auth", "none"]
    proc = BrokerProcess(tmp_path / "b", extra_args=extra, tls=tls)
    try:
        proc.start()
        await wait_for_login(proc.address, "admin", ADMIN_PASSWORD, tls=tls)
        yield proc, tls
    finally:
        proc.stop()


def _tls(tls: ClientTLS | None) -> dict[str, str]:
    return {} if tls is None else {"tls_ca": str(tls.ca)}


async def test_lag_and_resets_as_the_broker(
        broker: tuple[BrokerProcess, ClientTLS | None]) -> None:
    proc, tls = broker
    login = {"username": "admin", "password": ADMIN_PASSWORD, **_tls(tls)}
    async with Admin(proc.address, **login) as admin:  # type: ignore[arg-type]
        await admin.create_topic("orders", 1, 1)
    async with Producer(proc.address, **login) as producer:  # type: ignore[arg-type]
        for i in range(RECORDS):
            await producer.send("orders", b"v%d" % i, partition=0)
        await producer.flush()
    async with login_channel(proc.address, "admin", ADMIN_PASSWORD, tls=tls) as channel:
        await coordinator_ready(channel, "billing")
        await groups(channel).CommitOffsets(commit("billing", "orders", 3))
    async with Admin(proc.address, **login) as admin:  # type: ignore[arg-type]
        [lag] = (await admin.describe_group("billing")).partitions
        end = lag.log_end_offset
        assert end >= RECORDS  # offsets may have gaps (Raft's own entries)
        assert (lag.committed_offset, lag.lag) == (3, end - 3)
        earliest = await admin.reset_group_offsets("billing", ["orders"], to_earliest=True,
                                                   dry_run=True)
        assert [(c.offset, c.previous) for c in earliest] == [(0, 3)]
        # No topics named: every committed partition, read as the broker.
        latest = await admin.reset_group_offsets("billing", to_latest=True)
        assert [(c.topic, c.offset, c.previous) for c in latest] == [("orders", end, 3)]
        assert await admin.group_offsets("billing") == {("orders", 0): end}
        [after] = (await admin.describe_group("billing")).partitions
        assert after.lag == 0
    assert proc.serving()

