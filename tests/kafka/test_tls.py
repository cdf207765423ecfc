"""TLS on the Kafka listener with the broker's certificates: kcat and kafka-python over
mutual TLS (the client certificate's name is the principal the ACLs see), a client
without a certificate refused when client auth is required, and a certificate rotated
on disk served to new connections without a restart."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import errors as kerrors
from kafka.admin import NewTopic

from odradek.client import Admin
from odradek.client.acls import acl
from odradek.security.certs import Pki, issue, load_pair, make_pki, write_pair
from odradek.security.tls import ClientTLS
from tests.brokers import wait_until
from tests.kafka.conftest import KafkaBroker


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki) -> Iterator[KafkaBroker]:
    proc = KafkaBroker(tmp_path / "data", [
        "--listener", "tls", "--tls-cert", str(pki.broker_cert), "--tls-key",
        str(pki.broker_key), "--tls-ca", str(pki.ca), "--tls-client-auth", "required",
        "--authorization", "on", "--super-users", "User:client"])
    proc.tls = ClientTLS(pki.ca, pki.client_cert, pki.client_key)
    try:
        yield proc.start()
    finally:
        proc.stop()


def client_identity(pki: Pki, directory: Path, name: str) -> tuple[Path, Path]:
    ca_cert, ca_key = load_pair(pki.ca, pki.ca_key)
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    write_pair(*issue(ca_cert, ca_key, name, sans=(), server=False), cert, key)
    return cert, key


def tls_options(pki: Pki, cert: Path, key: Path) -> dict[str, object]:
    return {"security_protocol": "SSL", "ssl_cafile": str(pki.ca), "ssl_certfile": str(cert),
            "ssl_keyfile": str(key), "ssl_check_hostname": False}


async def test_mutual_tls_principals_and_acls(tls_broker: KafkaBroker, pki: Pki,
                                              tmp_path: Path) -> None:
    async with Admin(tls_broker.address, tls_ca=pki.ca, tls_cert=pki.client_cert,
                     tls_key=pki.client_key) as admin:
        await admin.create_topic("orders", 1, 1)
        await admin.create_acls([acl("User:erin", "topic", "orders", "write"),
                                 acl("User:erin", "topic", "orders", "read")])
    erin = client_identity(pki, tmp_path, "erin")
    frank = client_identity(pki, tmp_path, "frank")
    producer = KafkaProducer(bootstrap_servers=tls_broker.kafka_address, acks="all",
                             **tls_options(pki, *erin))  # type: ignore[arg-type]
    try:
        producer.send("orders", b"over tls").get(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer("orders", bootstrap_servers=tls_broker.kafka_address,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000,
                             **tls_options(pki, *erin))  # type: ignore[arg-type]
    try:
        assert [r.value for r in consumer] == [b"over tls"]
    finally:
        consumer.close()
    denied = KafkaProducer(bootstrap_servers=tls_broker.kafka_address, max_block_ms=5000,
                           **tls_options(pki, *frank))  # type: ignore[arg-type]
    try:
        with pytest.raises(kerrors.TopicAuthorizationFailedError):
            denied.send("orders", b"x").get(timeout=10)
    finally:
        denied.close()


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_over_tls_and_a_client_without_certificate(tls_broker: KafkaBroker,
                                                        pki: Pki) -> None:
    tls = ["-X", "security.protocol=ssl", "-X", f"ssl.ca.location={pki.ca}",
           "-X", f"ssl.certificate.location={pki.client_cert}",
           "-X", f"ssl.key.location={pki.client_key}"]
    listing = subprocess.run(["kcat", "-b", tls_broker.kafka_address, *tls, "-L"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    assert f"broker 0 at {tls_broker.kafka_address}" in listing
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.check_hostname = False
    with socket.create_connection(("127.0.0.1", tls_broker.kafka_port), timeout=10) as raw, \
            pytest.raises((ssl.SSLError, ConnectionError)), context.wrap_socket(raw) as sock:
        sock.sendall(b"\0\0\0\0")
        if not sock.recv(1):  # TLS 1.3 reports the refusal at the first read
            raise ConnectionError("closed")


def test_a_rotated_certificate_serves_new_connections(tls_broker: KafkaBroker, pki: Pki,
                                                      tmp_path: Path) -> None:
    def served_serial() -> int:
        context = ssl.create_default_context(cafile=str(pki.ca))
        context.check_hostname = False
        context.load_cert_chain(pki.client_cert, pki.client_key)
        with socket.create_connection(("127.0.0.1", tls_broker.kafka_port), timeout=10) as raw, \
                context.wrap_socket(raw) as sock:
            der = sock.getpeercert(binary_form=True)
        assert der is not None
        return int(x509.load_der_x509_certificate(der).serial_number)

    before = served_serial()
    ca_cert, ca_key = load_pair(pki.ca, pki.ca_key)
    new_cert, new_key = issue(ca_cert, ca_key, "broker", sans=("127.0.0.1", "localhost"))
    staged = tmp_path / "staged"
    staged.mkdir()
    write_pair(new_cert, new_key, staged / "b.pem", staged / "b-key.pem")
    (staged / "b-key.pem").replace(pki.broker_key)
    (staged / "b.pem").replace(pki.broker_cert)
    wait_until(lambda: served_serial() != before, 20, "the rotated certificate")


def test_sasl_over_tls(tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """SASL_SSL: TLS without client certificates, then a SCRAM login decides who calls."""
    monkeypatch.setenv("ODRADEK_BOOTSTRAP_PASSWORD", "admin-secret")
    proc = KafkaBroker(tmp_path / "sasl-ssl", [
        "--listener", "tls", "--tls-cert", str(pki.broker_cert), "--tls-key",
        str(pki.broker_key), "--tls-client-auth", "none", "--authorization", "on",
        "--super-users", "User:admin", "--bootstrap-user", "admin"])
    proc.tls = ClientTLS(pki.ca)
    try:
        proc.start()
        options = {"security_protocol": "SASL_SSL", "ssl_cafile": str(pki.ca),
                   "ssl_check_hostname": False, "sasl_mechanism": "SCRAM-SHA-512",
                   "sasl_plain_username": "admin", "sasl_plain_password": "admin-secret"}

        def admin_sees_topics() -> bool:
            try:
                admin = KafkaAdminClient(bootstrap_servers=proc.kafka_address,
                                         **options)  # type: ignore[arg-type]
            except kerrors.KafkaError:
                return False  # the bootstrap user is written once the cluster formed
            try:
                admin.create_topics([NewTopic("over-sasl-ssl", 1, 1)])
                return "over-sasl-ssl" in admin.list_topics()
            except kerrors.KafkaError:
                return False
            finally:
                admin.close()

        wait_until(admin_sees_topics, 60, "a SASL_SSL admin login and topic")
        producer = KafkaProducer(bootstrap_servers=proc.kafka_address, acks="all",
                                 **options)  # type: ignore[arg-type]
        try:
            producer.send("over-sasl-ssl", b"secret").get(timeout=30)
        finally:
            producer.close()
    finally:
        proc.stop()
