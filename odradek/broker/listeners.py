"""A broker's further listeners, beside its own gRPC listener (which brokers also use to
reach each other) and its Kafka listener: Kafka's `listeners` and `advertised.listeners`.

Each has a name, a protocol, a security mode, the address it binds and the address it
advertises. The advertised addresses are registered in the cluster metadata, and a client
connected to a listener is given, wherever an answer names a broker (metadata, the
coordinator, a leader hint in an error), that broker's address for the same listener:
clients outside a Kubernetes cluster are sent to NodePorts or load balancers, never to pod
addresses they cannot reach. A broker without that listener is left out of the answer."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from odradek.broker.errors import BrokerError
from odradek.broker.metadata.commands import Endpoint, Endpoints
from odradek.broker.metadata.image import MetadataImage
from odradek.security.hosts import host_port

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
PROTOCOLS = ("grpc", "kafka")
# tls: the server's certificate only (clients log in with SCRAM or a token, or are
# anonymous); mtls: a client certificate signed by --tls-ca is required.
SECURITY = ("plaintext", "tls", "mtls")
WILDCARDS = ("0.0.0.0", "::", "[::]", "")
_LISTENER = re.compile(r"^(?P<name>[^=]+)=(?P<protocol>[a-z]+)(\+(?P<security>[a-z]+))?"
                       r"://(?P<host>\[[^\]]*\]|[^:/]*):(?P<port>\d+)$")
_ADVERTISED = re.compile(r"^(?P<name>[^=]+)=(?P<host>\[[^\]]+\]|[^:/]+):"
                         r"(?P<port>\d+)(\+(?P<plus>\d+))?$")


class ListenerConfigError(ValueError):
    """A listener flag that cannot be served; the message names the flag."""


@dataclass(frozen=True)
class ListenerSpec:
    name: str
    protocol: str  # grpc | kafka
    security: str  # plaintext | tls | mtls
    bind_host: str
    bind_port: int  # 0: any free port
    advertised_host: str | None = None  # None: the bind host
    advertised_port: int = 0  # 0: the bound port

    def endpoint(self, bound_port: int) -> Endpoint:
        return Endpoint(self.name, self.advertised_host or self.bind_host,
                        self.advertised_port or bound_port)


def _port(text: str, flag: str, value: str) -> int:
    port = int(text)
    if port > 65535:
        raise ListenerConfigError(f"{flag} {value!r}: port {port} is above 65535")
    return port


def _name(name: str, flag: str, value: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ListenerConfigError(
            f"{flag} {value!r}: a listener name is 1-31 lowercase letters, digits and "
            "dashes, starting with a letter")
    return name


def parse_listener(value: str) -> ListenerSpec:
    """NAME=PROTOCOL[+tls|+mtls]://HOST:PORT, e.g. external=kafka+tls://0.0.0.0:9094."""
    flag = "--extra-listener"
    m = _LISTENER.match(value.strip())
    if m is None:
        raise ListenerConfigError(
            f"{flag} {value!r} is not NAME=PROTOCOL[+tls|+mtls]://HOST:PORT "
            "(e.g. external=grpc+tls://0.0.0.0:9094)")
    protocol, security = m["protocol"], m["security"] or "plaintext"
    if protocol not in PROTOCOLS:
        raise ListenerConfigError(f"{flag} {value!r}: the protocol must be one of "
                                  f"{', '.join(PROTOCOLS)}, not {protocol!r}")
    if security not in SECURITY[1:] and m["security"] is not None:
        raise ListenerConfigError(f"{flag} {value!r}: the security mode after '+' must be "
                                  f"tls or mtls, not {security!r}")
    return ListenerSpec(_name(m["name"], flag, value), protocol, security,
                        m["host"].strip("[]") or "0.0.0.0", _port(m["port"], flag, value))


def parse_advertised(value: str, broker_id: int = 0) -> tuple[str, str, int]:
    """NAME=HOST:PORT: where clients of listener NAME reach this broker. "{id}" stands for
    the broker id and PORT may be BASE+{id}, so that every pod of a StatefulSet can be
    given the same flag (external=broker-{id}.example.com:9094, external=10.0.0.7:31090+{id})."""
    flag = "--advertise"
    m = _ADVERTISED.match(value.strip().replace("{id}", str(broker_id)))
    if m is None:
        raise ListenerConfigError(f"{flag} {value!r} is not NAME=HOST:PORT "
                                  "(e.g. external=broker-0.example.com:31090)")
    port = _port(str(int(m["port"]) + int(m["plus"] or 0)), flag, value)
    if port == 0:
        raise ListenerConfigError(f"{flag} {value!r}: the port may not be 0")
    return _name(m["name"], flag, value), m["host"].strip("[]"), port


def combine(listeners: Iterable[ListenerSpec],
            advertised: Iterable[tuple[str, str, int]], has_tls: bool,
            has_ca: bool) -> tuple[ListenerSpec, ...]:
    """The listeners with their advertised addresses, checked together."""
    by_name: dict[str, ListenerSpec] = {}
    for spec in listeners:
        if spec.name in by_name:
            raise ListenerConfigError(f"--extra-listener {spec.name!r} is given twice")
        if spec.security != "plaintext" and not has_tls:
            raise ListenerConfigError(
                f"--extra-listener {spec.name!r} uses {spec.security}: it needs the "
                "broker's certificate (--listener tls with --tls-cert and --tls-key)")
        if spec.security == "mtls" and not has_ca:
            raise ListenerConfigError(f"--extra-listener {spec.name!r} uses mtls: it needs "
                                      "--tls-ca to check client certificates")
        by_name[spec.name] = spec
    for name, host, port in advertised:
        if name not in by_name:
            raise ListenerConfigError(f"--advertise {name!r}: no --extra-listener has that "
                                      "name")
        by_name[name] = replace(by_name[name], advertised_host=host, advertised_port=port)
    for spec in by_name.values():
        if spec.advertised_host is None and spec.bind_host in WILDCARDS:
            raise ListenerConfigError(
                f"--extra-listener {spec.name!r} binds every address ({spec.bind_host or '*'}"
                f"): say where clients reach it with --advertise {spec.name}=HOST:PORT")
    return tuple(sorted(by_name.values(), key=lambda s: s.name))


class Addressed(Protocol):
    """What the metadata knows of where a broker listens (BrokerInfo, BrokerEntry)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def kafka_port(self) -> int: ...
    @property
    def endpoints(self) -> Endpoints: ...


# Error metadata that names a broker: the address key and the key of its broker id.
_HINTS = (("leader", "leader_id"), ("coordinator", "coordinator_id"))


class Addresses:
    """How one listener names brokers to its clients: `name` None is the broker's own
    gRPC listener (`kafka` False) or its own Kafka listener (`kafka` True)."""

    def __init__(self, image: Callable[[], MetadataImage], name: str | None = None,
                 kafka: bool = False) -> None:
        self.image = image
        self.name = name
        self.kafka = kafka

    def of(self, broker: Addressed) -> tuple[str, int] | None:
        """The broker's (host, port) on this listener; None: it has no such listener."""
        if self.name is None:
            port = broker.kafka_port if self.kafka else broker.port
            return (broker.host, port) if port > 0 else None
        for e in broker.endpoints:
            if e.name == self.name:
                return e.host, e.port
        return None

    def address(self, broker: Addressed) -> str | None:
        found = self.of(broker)
        return host_port(*found) if found is not None else None

    def translate(self, internal: str, broker_id: int | None = None) -> str | None:
        """A broker's own gRPC address (what hints carry) as this listener names it."""
        if self.name is None and not self.kafka:
            return internal
        brokers = self.image().brokers
        if broker_id is not None and broker_id in brokers:
            return self.address(brokers[broker_id])
        for b in brokers.values():
            if host_port(b.host, b.port) == internal:
                return self.address(b)
        return None

    def error(self, error: BrokerError) -> BrokerError:
        """The error with the broker addresses in its metadata translated (dropped where
        the broker has no such listener: a client would dial an address it cannot reach)."""
        if self.name is None and not self.kafka:
            return error
        meta = dict(error.metadata)
        for key, id_key in _HINTS:
            if key in meta:
                broker_id = meta.get(id_key, "")
                found = self.translate(meta[key], int(broker_id) if broker_id.isdigit()
                                       else None)
                if found is None:
                    del meta[key]
                else:
                    meta[key] = found
        return BrokerError(error.reason, error.message, meta)
