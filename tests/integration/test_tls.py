"""TLS with real broker processes: TLS-only listeners, mutual TLS for clients and between
brokers, refused plaintext, untrusted and expired certificates, and a certificate rotated
on disk picked up without a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from odradek.client import Admin, Consumer, Producer, TopicPartition
from odradek.client.errors import OdradekError
from odradek.security.certs import Pki, issue, load_pair, make_pki, write_pair
from odradek.security.tls import ClientTLS
from tests.brokers import BrokerProcess, ClusterProcesses, client_tls
from tests.brokers import tls_args as broker_args

SHORT_MS = 3000


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Another CA, with broker and client certificates of its own."""
    return make_pki(tmp_path_factory.mktemp("foreign-pki"), common_name="Foreign CA")


def tls_kwargs(tls: ClientTLS) -> dict[str, str | None]:
    return {"tls_ca": str(tls.ca) if tls.ca else None,
            "tls_cert": str(tls.cert) if tls.cert else None,
            "tls_key": str(tls.key) if tls.key else None}


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path / "tls", extra_args=broker_args(pki), tls=client_tls(pki))
    try:
        yield proc.start()
    finally:
        proc.stop()


async def produce_consume(bootstrap: str, tls: ClientTLS, topic: str, rf: int = 1,
                          count: int = 50) -> None:
    async with Admin(bootstrap, **tls_kwargs(tls)) as admin:
        await admin.create_topic(topic, partitions=1, replication_factor=rf)
    async with Producer(bootstrap, linger_ms=1, **tls_kwargs(tls)) as producer:
        for i in range(count):
            await producer.send_and_wait(topic, b"v%d" % i, key=b"k")
    consumer = Consumer(bootstrap, fetch_max_wait_ms=100, **tls_kwargs(tls))
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got: list[bytes] = []
        for _ in range(100):
            got += [r.value or b"" for r in await consumer.poll(timeout_ms=200)]
            if len(got) >= count:
                break
        assert got == [b"v%d" % i for i in range(count)]
    finally:
        await consumer.close()


async def end_offset(bootstrap: str, tls: ClientTLS, topic: str) -> int:
    consumer = Consumer(bootstrap, **tls_kwargs(tls))
    try:
        tp = TopicPartition(topic, 0)
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.close()


async def refused(bootstrap: str, **tls: object) -> None:
    """A call that must fail: the handshake is refused."""
    with pytest.raises(OdradekError):
        async with Admin(bootstrap, request_timeout_ms=SHORT_MS, **tls) as admin:  # type: ignore[arg-type]
            await asyncio.wait_for(admin.list_topics(), 15)


async def test_produce_consume_over_tls(tls_broker: BrokerProcess, pki: Pki) -> None:
    await produce_consume(tls_broker.address, client_tls(pki), "secure")


async def test_plaintext_client_refused_by_tls_listener(
        tls_broker: BrokerProcess, pki: Pki) -> None:
    tls = client_tls(pki)
    async with Admin(tls_broker.address, **tls_kwargs(tls)) as admin:
        await admin.create_topic("guarded", partitions=1, replication_factor=1)
    before = await end_offset(tls_broker.address, tls, "guarded")
    with pytest.raises(OdradekError):
        async with Producer(tls_broker.address, tls=False, request_timeout_ms=SHORT_MS,
                            delivery_timeout_ms=5000, retries=1) as producer:
            await asyncio.wait_for(producer.send_and_wait("guarded", b"plain"), 20)
    await refused(tls_broker.address, tls=False)
    assert await end_offset(tls_broker.address, tls, "guarded") == before


async def test_untrusted_and_expired_client_certificates_refused(
        tls_broker: BrokerProcess, pki: Pki, foreign: Pki, tmp_path: Path) -> None:
    # A client certificate from another CA (the client itself trusts the broker's CA).
    await refused(tls_broker.address, tls_ca=str(pki.ca), tls_cert=str(foreign.client_cert),
                  tls_key=str(foreign.client_key))
    # No client certificate at all.
    await refused(tls_broker.address, tls_ca=str(pki.ca))
    # An expired certificate from the right CA.
    ca_cert, ca_key = load_pair(pki.ca, pki.ca_key)
    now = dt.datetime.now(dt.UTC)
    cert, key = issue(ca_cert, ca_key, "expired", sans=(), server=False,
                      not_before=now - dt.timedelta(days=10),
                      not_after=now - dt.timedelta(days=1))
    write_pair(cert, key, tmp_path / "expired.pem", tmp_path / "expired-key.pem")
    await refused(tls_broker.address, tls_ca=str(pki.ca), tls_cert=str(tmp_path / "expired.pem"),
                  tls_key=str(tmp_path / "expired-key.pem"))
    # The right certificate still works.
    async with Admin(tls_broker.address, **tls_kwargs(client_tls(pki))) as admin:
        await admin.list_topics()


async def test_three_brokers_with_mutual_tls(tmp_path: Path, pki: Pki) -> None:
    cluster = ClusterProcesses(tmp_path, 3, broker_args(pki), tls=client_tls(pki))
    try:
        cluster.start()
        await produce_consume(cluster.bootstrap, client_tls(pki), "replicated", rf=3)
        async with Admin(cluster.bootstrap, **tls_kwargs(client_tls(pki))) as admin:
            described = await admin.describe_topic("replicated")
            assert len(described.partitions[0].info.replicas) == 3
    finally:
        cluster.stop()


async def test_broker_with_foreign_certificate_cannot_join(
        tmp_path: Path, pki: Pki, foreign: Pki) -> None:
    cluster = ClusterProcesses(tmp_path, 3, broker_args(pki), tls=client_tls(pki))
    intruder = cluster.brokers[2]
    intruder.extra_args = [*intruder.extra_args[:4], *broker_args(foreign)]
    intruder.tls = client_tls(foreign)
    try:
        for broker in cluster.brokers[:2]:
            broker.start(wait=False)
        intruder.start(wait=False)
        for broker in cluster.brokers[:2]:
            broker.wait_ready()
        bootstrap = ",".join(b.address for b in cluster.brokers[:2])
        await produce_consume(bootstrap, client_tls(pki), "two-of-three", rf=2)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert not intruder.serving(), "a broker with a foreign certificate joined"
            await asyncio.sleep(0.25)
        async with Admin(bootstrap, **tls_kwargs(client_tls(pki))) as admin:
            metadata = await admin.metadata()
            assert sorted(b.id for b in metadata.brokers) == [0, 1]
    finally:
        cluster.stop()


def peer_serial(address: str, pki: Pki) -> int:
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    context.set_alpn_protocols(["h2"])
    with (socket.create_connection((host, int(port)), timeout=5) as raw,
          context.wrap_socket(raw, server_hostname=host) as tls):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


async def test_rotated_certificate_is_picked_up_live(tmp_path: Path, pki: Pki) -> None:
    cert_path, key_path = tmp_path / "broker.pem", tmp_path / "broker-key.pem"
    shutil.copy(pki.broker_cert, cert_path)
    shutil.copy(pki.broker_key, key_path)
    old = x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number
    proc = BrokerProcess(tmp_path / "rotating", extra_args=broker_args(pki, cert_path, key_path),
                         tls=client_tls(pki))
    try:
        proc.start()
        assert peer_serial(proc.address, pki) == old
        ca_cert, ca_key = load_pair(pki.ca, pki.ca_key)
        new_serial = old + 1 if old < 2**150 else old - 1
        cert, key = issue(ca_cert, ca_key, "broker", serial=new_serial,
                          not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=30))
        write_pair(cert, key, cert_path, key_path)
        deadline = time.monotonic() + 15
        seen = old
        while seen != new_serial and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            seen = peer_serial(proc.address, pki)
        assert seen == new_serial
        # Clients still work against the rotated certificate.
        await produce_consume(proc.address, client_tls(pki), "after-rotation", count=5)
    finally:
        proc.stop()


def odradek(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODRADEK_TLS")}
    return subprocess.run([sys.executable, "-m", "odradek.cli.main", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, check=False,
                          env=dict(env, PYTHONUNBUFFERED="1"))


def test_cli_over_tls(tls_broker: BrokerProcess, pki: Pki) -> None:
    flags = ["--bootstrap", tls_broker.address, "--tls-ca", str(pki.ca),
             "--tls-cert", str(pki.client_cert), "--tls-key", str(pki.client_key)]
    created = odradek("topic", "create", "cli-tls", "--partitions", "1", *flags)
    assert created.returncode == 0, created.stderr
    produced = odradek("produce", "cli-tls", *flags, stdin="one\ntwo\n")
    assert produced.returncode == 0, produced.stderr
    consumed = odradek("consume", "cli-tls", "--from-beginning", "--max-messages", "2",
                       "--timeout-ms", "5000", *flags)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.split() == ["one", "two"]
    error = (f"error: no broker answered at {tls_broker.address}: broker unavailable: failed "
             "to connect to all addresses; last error: UNAVAILABLE: ipv4:"
             f"{tls_broker.address}: Socket closed (UNAVAILABLE)")
    plain = odradek("topic", "list", "--bootstrap", tls_broker.address)
    assert (plain.returncode, plain.stderr.splitlines()) == (1, [
        error, "hint: the broker may speak TLS only: add --tls, with --tls-ca PEM when its CA "
               "is not a system root, and --tls-cert PEM --tls-key PEM for mutual TLS"])
    # Trusting the broker, without the certificate it requires: the other hint, and none
    # of gRPC's own log lines (ssl_transport_security.cc) around it.
    no_cert = odradek("topic", "list", "--bootstrap", tls_broker.address,
                      "--tls-ca", str(pki.ca))
    assert (no_cert.returncode, no_cert.stderr.splitlines()) == (1, [
        error, "hint: the broker may require a client certificate (mutual TLS): add "
               "--tls-cert PEM --tls-key PEM"])
    # A key that is not the certificate's: gRPC's C core logs six lines of its own
    # (ssl_transport_security.cc: Invalid private key) unless GRPC_VERBOSITY keeps it quiet.
    wrong_key = odradek("topic", "list", "--bootstrap", tls_broker.address, "--tls-ca",
                        str(pki.ca), "--tls-cert", str(pki.client_cert), "--tls-key",
                        str(pki.broker_key))
    assert (wrong_key.returncode, wrong_key.stderr.splitlines()) == (1, [
        f"error: no broker answered at {tls_broker.address}: broker unavailable: failed to "
        f"connect to all addresses; last error: UNKNOWN: ipv4:{tls_broker.address}: Failed "
        "to create security handshaker. (UNAVAILABLE)",
        "hint: the client's TLS files do not fit together: is --tls-key the key of "
        "--tls-cert, and are both PEM?"])


def test_cluster_without_client_auth_refuses_to_start(tmp_path: Path, pki: Pki) -> None:
    proc = BrokerProcess(tmp_path / "lonely", extra_args=[
        "--broker-id", "0", "--voters", "0=127.0.0.1:1,1=127.0.0.1:2",
        "--tls-cert", str(pki.broker_cert), "--tls-key", str(pki.broker_key),
        "--tls-client-auth", "none"])
    try:
        proc.start(wait=False)
        assert proc.proc is not None
        assert proc.proc.wait(timeout=30) != 0
        assert "--tls-client-auth required" in proc.log()
    finally:
        proc.stop()
