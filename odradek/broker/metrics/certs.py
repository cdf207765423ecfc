"""When the broker's TLS certificates expire, as Prometheus gauges.

An expired certificate takes a broker off the network without warning: clients and the
other brokers refuse the handshake. The alert rules page on the time left, so the
collector reports each certificate's notAfter for the files the broker uses now. The files
are parsed again only when their (mtime, size) changes, so a rotated certificate shows up
at the next scrape, the same way the listener picks it up at the next handshake."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from odradek.security.tls import ServerTLS

log = logging.getLogger("odradek.broker.metrics.broker")


@dataclass(frozen=True)
class CertificateExpiry:
    role: str  # "broker" (the broker's own certificate chain) or "ca" (the trusted bundle)
    subject: str  # the common name, or the whole subject when it has none
    serial: str
    not_after: float  # Unix seconds


def _subject(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def read_expiries(role: str, pem: bytes) -> list[CertificateExpiry]:
    """Every certificate in a PEM file (a chain or a bundle may hold several)."""
    return [CertificateExpiry(role, _subject(cert), format(cert.serial_number, "x"),
                              cert.not_valid_after_utc.timestamp())
            for cert in x509.load_pem_x509_certificates(pem)]


class CertificateCollector(Collector):
    """`odradek_tls_certificate_expiry_timestamp_seconds` for the broker's certificate and CA."""

    def __init__(self, tls: ServerTLS) -> None:
        self._files = [("broker", tls.cert)] + ([("ca", tls.ca)] if tls.ca else [])
        self._cache: dict[Path, tuple[tuple[int, int], list[CertificateExpiry]]] = {}

    def _expiries(self, role: str, path: Path) -> list[CertificateExpiry]:
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            cached = self._cache.get(path)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            expiries = read_expiries(role, path.read_bytes())
        except (OSError, ValueError) as e:
            # Mid-rotation or unreadable: keep showing what was read last rather than
            # making the series vanish (which would also silence the alert).
            log.warning("cannot read certificate %s for metrics: %s", path, e)
            cached = self._cache.get(path)
            return cached[1] if cached is not None else []
        self._cache[path] = (stamp, expiries)
        return expiries

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "odradek_tls_certificate_expiry_timestamp_seconds",
            "When a certificate the broker presents (role=broker) or trusts (role=ca) "
            "expires, in Unix seconds", labels=["role", "subject", "serial"])
        for role, path in self._files:
            for expiry in self._expiries(role, path):
                family.add_metric([expiry.role, expiry.subject, expiry.serial], expiry.not_after)
        yield family

    def describe(self) -> Iterable[Metric]:
        return []
