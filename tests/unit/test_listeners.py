"""Further listeners: their flags, their endpoints in the metadata, and how a listener
names brokers (metadata, coordinators, hints in errors)."""

from __future__ import annotations

import pytest

from odradek.broker.errors import BrokerError, Reason
from odradek.broker.listeners import (
    Addresses,
    ListenerConfigError,
    ListenerSpec,
    combine,
    parse_advertised,
    parse_listener,
)
from odradek.broker.metadata.commands import Endpoint, RegisterBroker, decode_command
from odradek.broker.metadata.image import (
    MetadataImage,
    apply,
    decode_snapshot,
    encode_snapshot,
    registered_as,
)

EXTERNAL = (Endpoint("external", "b0.example.com", 31090),)


def test_a_listener_flag_parses() -> None:
    assert parse_listener("external=grpc+tls://0.0.0.0:9094") == ListenerSpec(
        "external", "grpc", "tls", "0.0.0.0", 9094)
    assert parse_listener("ext-kafka=kafka://[::1]:0") == ListenerSpec(
        "ext-kafka", "kafka", "plaintext", "::1", 0)
    assert parse_listener("e=grpc+mtls://:9094").bind_host == "0.0.0.0"
    assert parse_advertised("external=b0.example.com:31090") == (
        "external", "b0.example.com", 31090)
    # One flag for every pod of a StatefulSet: the broker id fills it in.
    assert parse_advertised("external=b{id}.example.com:31090+{id}", broker_id=2) == (
        "external", "b2.example.com", 31092)


@pytest.mark.parametrize(("value", "words"), [
    ("external", "is not NAME=PROTOCOL"),
    ("external=http://0.0.0.0:80", "protocol must be one of grpc, kafka"),
    ("external=grpc+ssl://0.0.0.0:9094", "tls or mtls, not 'ssl'"),
    ("External=grpc://0.0.0.0:9094", "lowercase letters"),
    ("external=grpc://0.0.0.0:99999", "above 65535"),
])
def test_a_bad_listener_flag_says_what_is_wrong(value: str, words: str) -> None:
    with pytest.raises(ListenerConfigError, match=words):
        parse_listener(value)


def test_listeners_are_checked_together() -> None:
    wildcard = parse_listener("external=grpc://0.0.0.0:9094")
    with pytest.raises(ListenerConfigError, match="--advertise external=HOST:PORT"):
        combine([wildcard], [], has_tls=False, has_ca=False)
    with pytest.raises(ListenerConfigError, match="given twice"):
        combine([wildcard, wildcard], [("external", "h", 1)], has_tls=False, has_ca=False)
    with pytest.raises(ListenerConfigError, match="no --extra-listener has that name"):
        combine([wildcard], [("other", "h", 1)], has_tls=False, has_ca=False)
    with pytest.raises(ListenerConfigError, match="--listener tls"):
        combine([parse_listener("e=grpc+tls://h:1")], [], has_tls=False, has_ca=False)
    with pytest.raises(ListenerConfigError, match="--tls-ca"):
        combine([parse_listener("e=grpc+mtls://h:1")], [], has_tls=True, has_ca=False)
    (spec,) = combine([wildcard], [("external", "b0.example.com", 31090)], has_tls=False,
                      has_ca=False)
    assert spec.endpoint(9094) == EXTERNAL[0]
    assert parse_listener("e=grpc://10.0.0.5:0").endpoint(40001) == Endpoint(
        "e", "10.0.0.5", 40001)


def test_endpoints_travel_in_commands_and_snapshots() -> None:
    cmd = RegisterBroker(0, "b0.internal", 9092, None, 9093, EXTERNAL)
    assert decode_command(cmd.encode()) == cmd
    # What brokers without listeners wrote decodes to no endpoints, and is written the same.
    old = RegisterBroker(0, "b0.internal", 9092)
    assert b"endpoints" not in old.encode()
    assert decode_command(old.encode()) == old
    image = apply(MetadataImage(), 1, cmd)
    assert image.brokers[0].endpoints == EXTERNAL
    assert decode_snapshot(encode_snapshot(image)).brokers[0].endpoints == EXTERNAL
    assert registered_as(image.brokers[0], cmd)
    assert not registered_as(image.brokers[0], old)  # a listener dropped: registered again
    with pytest.raises(ValueError, match="must be \\[host, port\\]"):
        decode_command(b'{"type":"register_broker","broker_id":0,"host":"h","port":1,'
                       b'"rack":null,"endpoints":{"e":["h"]}}')


def _image() -> MetadataImage:
    image = apply(MetadataImage(), 1, RegisterBroker(0, "b0.internal", 9092, None, 9093,
                                                     EXTERNAL))
    return apply(image, 2, RegisterBroker(1, "b1.internal", 9092, None, 9093))


def test_each_listener_names_brokers_its_own_way() -> None:
    image = _image()
    b0, b1 = image.brokers[0], image.brokers[1]
    own, kafka = Addresses(lambda: image), Addresses(lambda: image, kafka=True)
    external = Addresses(lambda: image, "external")
    assert own.of(b0) == ("b0.internal", 9092) and kafka.of(b0) == ("b0.internal", 9093)
    assert external.of(b0) == ("b0.example.com", 31090)
    assert external.of(b1) is None  # broker 1 has no such listener: left out
    assert external.translate("b0.internal:9092") == "b0.example.com:31090"
    assert external.translate("anything", broker_id=0) == "b0.example.com:31090"
    assert external.translate("b1.internal:9092") is None


def test_hints_in_errors_name_the_listeners_addresses() -> None:
    image = _image()
    external = Addresses(lambda: image, "external")
    error = BrokerError(Reason.NOT_LEADER, "not the leader",
                        {"leader": "b0.internal:9092", "leader_id": "0", "topic": "t"})
    assert external.error(error).metadata == {"leader": "b0.example.com:31090",
                                              "leader_id": "0", "topic": "t"}
    moved = BrokerError(Reason.NOT_COORDINATOR, "moved",
                        {"coordinator": "b1.internal:9092", "coordinator_id": "1"})
    # Broker 1 cannot be reached on this listener: no hint rather than a wrong one.
    assert external.error(moved).metadata == {"coordinator_id": "1"}
    assert Addresses(lambda: image).error(error) is error
