"""Host names of ACLs and callers in one canonical form, so that a rule for "::1" matches
a caller gRPC reports as "ipv6:%5B::1%5D:5000", and one for "10.0.0.1" a dual-stack
caller at "::ffff:10.0.0.1"."""

from __future__ import annotations

import ipaddress
from urllib.parse import unquote


def canonical_host(host: str) -> str:
    """An IP address compressed (IPv4-mapped IPv6 as its IPv4 address, any zone id
    dropped); anything else (a name, "*") as it is."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def peer_host(peer: str) -> str:
    """The caller's host from gRPC's peer string: "ipv4:10.0.0.1:5555" -> "10.0.0.1",
    "ipv6:[::1]:5555" or "ipv6:%5B::1%5D:5555" -> "::1"; other kinds ("unix:/s") give
    what follows the kind."""
    kind, _, rest = unquote(peer).partition(":")
    if kind == "ipv6":
        host, _, _port = rest.rpartition(":")
        return canonical_host(host.strip("[]"))
    if kind == "ipv4":
        return canonical_host(rest.rpartition(":")[0])
    return rest or peer


def host_port(host: str, port: int) -> str:
    """An address gRPC can dial or listen on: IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
