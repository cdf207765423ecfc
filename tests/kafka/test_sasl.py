"""SASL SCRAM-SHA-512 on the Kafka listener against the users made over gRPC, with the
ACLs gRPC applies: a user's allowed produce and consume, a topic it may not write
(TOPIC_AUTHORIZATION_FAILED), a group it may not join, a wrong password and an unknown
user (one and the same refusal), an anonymous client that sees no topics, and SCRAM
exchanges in progress capped per address as on gRPC."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError
from confluent_kafka import Producer as ConfluentProducer
from kafka import KafkaConsumer, KafkaProducer
from kafka import errors as kerrors

from odradek.broker.auth.peer_limits import MAX_EXCHANGES_PER_PEER
from odradek.broker.kafka.server import MAX_SASL_REQUEST_BYTES
from odradek.client import Admin, OdradekError
from odradek.client.acls import acl
from odradek.security import scram
from tests.brokers import wait_until
from tests.kafka.conftest import KafkaBroker
from tests.kafka.test_frames import connect, frame, header, read_frame

SASL_AUTHENTICATION_FAILED = 58

ADMIN_PASSWORD = "admin-secret"


@pytest.fixture
def secured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KafkaBroker]:
    monkeypatch.setenv("ODRADEK_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
    proc = KafkaBroker(tmp_path / "data", ["--authorization", "on", "--super-users",
                                           "User:admin", "--bootstrap-user", "admin"])
    try:
        proc.start()
        asyncio.run(_setup(proc))
        yield proc
    finally:
        proc.stop()


async def _setup(proc: KafkaBroker) -> None:
    for _ in range(100):  # the bootstrap user is written once the cluster has formed
        try:
            async with Admin(proc.address, username="admin", password=ADMIN_PASSWORD) as admin:
                await admin.create_user("alice", "alice-pw", iterations=4096)
                for topic in ("orders", "secret"):
                    await admin.create_topic(topic, 1, 1)
                await admin.create_acls([
                    acl("User:alice", "topic", "orders", "write"),
                    acl("User:alice", "topic", "orders", "read"),
                    acl("User:alice", "group", "billing", "read")])
                return
        except Exception:  # noqa: BLE001 - retried until the admin login works
            await asyncio.sleep(0.1)
    raise TimeoutError("could not set up users and ACLs")


def sasl(user: str, password: str) -> dict[str, str]:
    return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": user, "sasl_plain_password": password}


def test_a_user_produces_and_consumes_what_its_acls_allow(secured: KafkaBroker) -> None:
    producer = KafkaProducer(bootstrap_servers=secured.kafka_address, acks="all",
                             **sasl("alice", "alice-pw"))
    try:
        producer.send("orders", b"paid").get(timeout=30)
        with pytest.raises(kerrors.TopicAuthorizationFailedError):
            producer.send("secret", b"leak").get(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer(bootstrap_servers=secured.kafka_address, group_id="billing",
                             auto_offset_reset="earliest", consumer_timeout_ms=5000,
                             **sasl("alice", "alice-pw"))
    try:
        consumer.subscribe(["orders"])
        assert [r.value for r in consumer] == [b"paid"]
    finally:
        consumer.close()
    other = KafkaConsumer(bootstrap_servers=secured.kafka_address, group_id="payroll",
                          consumer_timeout_ms=5000, **sasl("alice", "alice-pw"))
    try:
        other.subscribe(["orders"])
        with pytest.raises(kerrors.GroupAuthorizationFailedError):
            other.poll(timeout_ms=5000)
    finally:
        other.close()


def test_wrong_password_and_unknown_user_are_refused_alike(secured: KafkaBroker) -> None:
    errors = []
    for user, password in (("alice", "wrong"), ("nobody", "alice-pw")):
        failures: list[KafkaError] = []
        producer = ConfluentProducer({
            "bootstrap.servers": secured.kafka_address, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user,
            "sasl.password": password, "error_cb": failures.append})
        try:
            for _ in range(50):
                producer.poll(0.1)
                if any(f.code() == KafkaError._AUTHENTICATION for f in failures):
                    break
        finally:
            producer.flush(1)
        auth = [f for f in failures if f.code() == KafkaError._AUTHENTICATION]
        assert auth, failures
        errors.append(auth[0].str().split(":", 1)[-1].strip().split(" (after")[0])
    assert errors[0] == errors[1]


def test_an_anonymous_client_sees_no_topics_and_may_not_write(secured: KafkaBroker) -> None:
    consumer = KafkaConsumer(bootstrap_servers=secured.kafka_address)
    try:
        assert consumer.topics() == set()
    finally:
        consumer.close()
    producer = KafkaProducer(bootstrap_servers=secured.kafka_address, max_block_ms=3000)
    try:  # an existing topic and a missing one look the same
        for topic in ("orders", "ghost"):
            with pytest.raises(kerrors.TopicAuthorizationFailedError):
                producer.send(topic, b"x").get(timeout=10)
    finally:
        producer.close()


def test_acls_made_through_kafka_apply_and_show_over_grpc(secured: KafkaBroker) -> None:
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    admin = AdminClient({"bootstrap.servers": secured.kafka_address,
                         "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin",
                         "sasl.password": ADMIN_PASSWORD})
    binding = AclBinding(ResourceType.TOPIC, "secret", ResourcePatternType.LITERAL,
                         "User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
    admin.create_acls([binding])[binding].result(30)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    listed = admin.describe_acls(everything).result(30)
    assert binding in listed and len(listed) == 4

    async def grpc_view() -> list[tuple[str, str, str]]:
        async with Admin(secured.address, username="admin", password=ADMIN_PASSWORD) as grpc:
            return [(a.principal, a.resource_name, a.operation) for a in await grpc.list_acls()]
    assert ("User:alice", "secret", "write") in asyncio.run(grpc_view())

    producer = KafkaProducer(bootstrap_servers=secured.kafka_address, acks="all",
                             **sasl("alice", "alice-pw"))
    try:
        producer.send("secret", b"now allowed").get(timeout=30)
        only_secret = AclBindingFilter(ResourceType.TOPIC, "secret",
                                       ResourcePatternType.LITERAL, None, None,
                                       AclOperation.ANY, AclPermissionType.ANY)
        deleted = admin.delete_acls([only_secret])[only_secret].result(30)
        assert deleted == [binding]
        with pytest.raises(kerrors.TopicAuthorizationFailedError):
            producer.send("secret", b"denied again").get(timeout=30)
    finally:
        producer.close()


def test_users_made_through_kafka_log_in_on_both_listeners(secured: KafkaBroker) -> None:
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({"bootstrap.servers": secured.kafka_address,
                         "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin",
                         "sasl.password": ADMIN_PASSWORD})
    upsert = UserScramCredentialUpsertion(
        "bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"bob-pw")
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(30)
    described = admin.describe_user_scram_credentials(["bob"])["bob"].result(30)
    assert [i.iterations for i in described.scram_credential_infos] == [8192]

    async def grpc_login() -> str:
        """The reason bob's topic list is refused: logged in, he may describe nothing."""
        async with Admin(secured.address, username="bob", password="bob-pw") as grpc:
            try:
                await grpc.list_topics()
            except OdradekError as exc:
                return exc.reason
            return "listed"
    assert asyncio.run(grpc_login()) == "TOPIC_AUTHORIZATION_FAILED"
    consumer = KafkaConsumer(bootstrap_servers=secured.kafka_address, **sasl("bob", "bob-pw"))
    try:
        assert consumer.topics() == set()
    finally:
        consumer.close()

    deletion = UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_512)
    for future in admin.alter_user_scram_credentials([deletion]).values():
        future.result(30)
    assert asyncio.run(grpc_login()) == "AUTHENTICATION_FAILED"


def _scram_started(sock: socket.socket, correlation_id: int) -> int:
    """SaslHandshake then the client's first SCRAM message on one connection: the
    SaslAuthenticate error code (0 while the exchange waits for the client's proof)."""
    mechanism = b"SCRAM-SHA-512"
    sock.sendall(frame(header(17, 1, correlation_id, False)
                       + struct.pack(">h", len(mechanism)) + mechanism))
    answer = read_frame(sock)
    assert answer is not None and struct.unpack_from(">ih", answer) == (correlation_id, 0)
    first = scram.ClientExchange("mallory", "guess").first().encode()
    sock.sendall(frame(header(36, 0, correlation_id + 1, False)
                       + struct.pack(">i", len(first)) + first))
    answer = read_frame(sock)
    assert answer is not None
    got_id, error = struct.unpack_from(">ih", answer)
    assert got_id == correlation_id + 1
    return int(error)


def test_scram_exchanges_are_capped_per_address_and_freed_with_their_connection(
        secured: KafkaBroker) -> None:
    held = [connect(secured) for _ in range(MAX_EXCHANGES_PER_PEER)]
    try:
        for sock in held:
            assert _scram_started(sock, 1) == 0
        with connect(secured) as over:
            assert _scram_started(over, 1) == SASL_AUTHENTICATION_FAILED
            assert read_frame(over) is None  # a failed authentication closes the connection
        # A connection that leaves mid-exchange gives its slot back at once, not when the
        # exchange would have expired.
        held.pop().close()

        def one_more_starts() -> bool:
            with connect(secured) as sock:
                return _scram_started(sock, 1) == 0

        wait_until(one_more_starts, 20, "a freed SCRAM slot")
    finally:
        for sock in held:
            sock.close()


def test_a_large_frame_during_sasl_authentication_closes_the_connection(
        secured: KafkaBroker) -> None:
    """As Kafka's sasl.server.max.receive.size: a connection that has begun SASL and not
    finished it is refused a frame over 512 KiB from its length alone (nothing of it is
    buffered); the broker goes on serving logins."""
    with connect(secured) as sock:
        mechanism = b"SCRAM-SHA-512"
        sock.sendall(frame(header(17, 1, 1, False) + struct.pack(">h", len(mechanism))
                           + mechanism))
        answer = read_frame(sock)
        assert answer is not None and struct.unpack_from(">ih", answer) == (1, 0)
        sock.sendall(struct.pack(">i", MAX_SASL_REQUEST_BYTES + 1) + b"\0" * 1024)
        assert read_frame(sock) is None
    with connect(secured) as sock:
        assert _scram_started(sock, 1) == 0  # the limit is one connection's, not the broker's
    producer = KafkaProducer(bootstrap_servers=secured.kafka_address, acks="all",
                             **sasl("alice", "alice-pw"))
    try:
        producer.send("orders", b"after").get(timeout=30)
    finally:
        producer.close()
