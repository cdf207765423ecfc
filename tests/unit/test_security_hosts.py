"""Host names of callers and ACLs in one canonical form."""

from __future__ import annotations

import pytest

from odradek.security.hosts import canonical_host, host_port, peer_host


@pytest.mark.parametrize(("peer", "host"), [
    ("ipv4:10.1.2.3:99", "10.1.2.3"),
    ("ipv6:[::1]:5000", "::1"),
    ("ipv6:%5B::1%5D:5000", "::1"),
    ("ipv6:%5B::ffff:10.0.0.7%5D:5000", "10.0.0.7"),
    ("ipv6:[fe80::1%25eth0]:5000", "fe80::1"),
    ("ipv6:[2001:0db8:0000:0000:0000:0000:0000:0001]:1", "2001:db8::1"),
    ("unix:/run/s", "/run/s"),
])
def test_peer_host(peer: str, host: str) -> None:
    assert peer_host(peer) == host


def test_canonical_host_leaves_names_and_wildcards() -> None:
    assert canonical_host("*") == "*"
    assert canonical_host("broker-0.example") == "broker-0.example"
    assert canonical_host("0:0:0:0:0:0:0:1") == "::1"


def test_host_port_brackets_ipv6() -> None:
    assert host_port("::1", 9092) == "[::1]:9092"
    assert host_port("[::1]", 9092) == "[::1]:9092"
    assert host_port("10.0.0.1", 9092) == "10.0.0.1:9092"
