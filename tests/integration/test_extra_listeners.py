"""Further listeners with real broker processes: clients that come in through a listener
are sent to every broker's address for that same listener (gRPC and Kafka, with a
consumer group), and a TLS listener that asks for no client certificate lets SCRAM clients
in while the brokers' own listener keeps requiring mutual TLS."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import Producer as KafkaProducer
from confluent_kafka.admin import AdminClient

from odradek.client import Admin, Consumer, Producer
from odradek.client.errors import OdradekError
from odradek.security.certs import Pki, make_pki
from tests.brokers import (
    BrokerProcess,
    ClusterProcesses,
    client_tls,
    free_port,
    tls_args,
    wait_until,
)

OUTSIDE = "127.0.0.2"  # another loopback address: what "outside" clients dial


def _outside_reachable() -> bool:
    with socket.socket() as s:
        try:
            s.bind((OUTSIDE, 0))
        except OSError:
            return False
    return True


pytestmark = pytest.mark.skipif(not _outside_reachable(),
                                reason=f"{OUTSIDE} is not a local address here")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcesses]:
    c = ClusterProcesses(tmp_path_factory.mktemp("listeners"), 3,
                         ["--default-replication-factor", "3"])
    for b in c.brokers:
        b.outside_grpc = free_port()  # type: ignore[attr-defined]
        b.outside_kafka = free_port()  # type: ignore[attr-defined]
        b.extra_args += ["--kafka-port", str(free_port()),
                         "--extra-listener", f"outside=grpc://{OUTSIDE}:{b.outside_grpc}",  # type: ignore[attr-defined]
                         "--extra-listener",
                         f"outside-kafka=kafka://{OUTSIDE}:{b.outside_kafka}"]  # type: ignore[attr-defined]
    c.start()
    try:
        yield c
    finally:
        c.stop()


def test_grpc_clients_of_a_listener_are_sent_to_its_addresses(
        cluster: ClusterProcesses) -> None:
    outside = [f"{OUTSIDE}:{b.outside_grpc}" for b in cluster.brokers]  # type: ignore[attr-defined]

    async def go() -> None:
        async with Admin(cluster.bootstrap) as admin:
            await admin.create_topic("outside", partitions=3, replication_factor=3)
            inside = await admin.metadata()
        assert sorted(f"{b.host}:{b.port}" for b in inside.brokers) == sorted(
            b.address for b in cluster.brokers)
        async with Admin(outside[0]) as admin:
            seen = await admin.metadata(["outside"])
            assert sorted(f"{b.host}:{b.port}" for b in seen.brokers) == sorted(
                outside)
        # Leaders on all three brokers, the group's coordinator somewhere: every call of
        # these clients goes to the listener's addresses, none to the brokers' own.
        async with Producer(outside[0], linger_ms=1) as producer:
            for i in range(30):
                await producer.send_and_wait("outside", b"v%d" % i, partition=i % 3)
            dialed = set(producer.cluster._channels)
        consumer = Consumer(outside[1], group_id="outsiders", auto_offset_reset="earliest")
        try:
            consumer.subscribe(["outside"])
            got: list[bytes] = []

            async def read_all() -> bool:
                got.extend(r.value or b"" for r in await consumer.poll(200))
                return len(got) >= 30

            for _ in range(300):
                if await read_all():
                    break
            await consumer.commit()
            dialed |= set(consumer.cluster._channels)
        finally:
            await consumer.close()
        assert sorted(got) == sorted(b"v%d" % i for i in range(30))
        assert dialed <= set(outside) and len(dialed) == 3, dialed

    asyncio.run(go())


def test_kafka_clients_of_a_listener_are_sent_to_its_addresses(
        cluster: ClusterProcesses) -> None:
    outside = [f"{OUTSIDE}:{b.outside_kafka}" for b in cluster.brokers]  # type: ignore[attr-defined]

    async def create() -> None:  # Odradek creates no topic on a client's first use
        async with Admin(cluster.bootstrap) as admin:
            await admin.create_topic("kafka-outside", partitions=3, replication_factor=3)

    asyncio.run(create())
    admin = AdminClient({"bootstrap.servers": outside[0]})
    brokers = admin.list_topics(timeout=30).brokers
    assert sorted(f"{b.host}:{b.port}" for b in brokers.values()) == sorted(outside)
    producer = KafkaProducer({"bootstrap.servers": outside[2], "enable.idempotence": True,
                              "linger.ms": 1})
    errors: list[object] = []
    for i in range(20):
        producer.produce("kafka-outside", b"k%d" % i,
                         on_delivery=lambda e, _m: errors.append(e) if e else None)
    assert producer.flush(60) == 0 and not errors
    consumer = KafkaConsumer({"bootstrap.servers": outside[1], "group.id": "kafka-outsiders",
                              "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe(["kafka-outside"])
        got: list[bytes] = []

        def read() -> bool:
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
            return len(got) >= 20

        wait_until(read, 60, "the group reads every record through the listener")
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    assert sorted(got) == sorted(b"k%d" % i for i in range(20))


PASSWORD = "outside-secret-1"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[BrokerProcess, Pki, int]]:
    pki = make_pki(tmp_path / "pki")
    password_file = tmp_path / "admin-password"
    password_file.write_text(PASSWORD + "\n")
    port = free_port()
    broker = BrokerProcess(tmp_path / "secured", extra_args=[
        *tls_args(pki), "--authorization", "on", "--super-users", "User:admin",
        "--bootstrap-user", "admin", "--bootstrap-password-file", str(password_file),
        "--extra-listener", f"scram=grpc+tls://127.0.0.1:{port}",
        "--default-replication-factor", "1"], tls=client_tls(pki))
    try:
        yield broker.start(), pki, port
    finally:
        broker.stop()


def test_scram_clients_need_no_certificate_on_a_tls_listener(
        secured: tuple[BrokerProcess, Pki, int]) -> None:
    broker, pki, port = secured
    address = f"127.0.0.1:{port}"

    async def go() -> None:
        login = {"tls_ca": str(pki.ca), "username": "admin", "password": PASSWORD}

        async def created() -> None:
            async with Admin(address, **login) as admin:  # type: ignore[arg-type]
                await admin.create_topic("scram", partitions=1, replication_factor=1)

        for _ in range(100):  # the bootstrap user is made once the broker serves
            try:
                await created()
                break
            except OdradekError as exc:
                if "AUTHENTICATION" not in exc.reason:
                    raise
                await asyncio.sleep(0.2)
        async with Producer(address, linger_ms=1, **login) as producer:  # type: ignore[arg-type]
            await producer.send_and_wait("scram", b"hello", partition=0)
        async with Admin(address, **{**login, "password": "wrong-password"}) as admin:  # type: ignore[arg-type]
            with pytest.raises(OdradekError, match="AUTHENTICATION_FAILED"):
                await admin.list_topics()
        # The brokers' own listener still wants a client certificate.
        async with Admin(broker.address, **login, request_timeout_ms=3000) as admin:  # type: ignore[arg-type]
            with pytest.raises(OdradekError):
                await admin.list_topics()

    asyncio.run(go())


def test_a_listener_on_every_address_must_say_where_it_is_reached(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "b", extra_args=[
        "--extra-listener", f"outside=grpc://0.0.0.0:{free_port()}"])
    with pytest.raises(RuntimeError, match="--advertise outside=HOST:PORT"):
        broker.start()
    broker.stop()
