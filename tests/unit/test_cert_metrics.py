"""The certificate expiry gauges: every certificate of a file, and a rotation seen at the
next scrape."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from odradek.broker.metrics.certs import CertificateCollector, read_expiries
from odradek.security.certs import issue, load_pair, make_ca, make_pki, write_pair
from odradek.security.tls import ServerTLS


def samples(collector: CertificateCollector) -> dict[tuple[str, str], float]:
    (family,) = list(collector.collect())
    return {(s.labels["role"], s.labels["subject"]): s.value for s in family.samples}


def test_every_certificate_of_a_bundle_is_reported() -> None:
    first = issue(*make_ca("A"), "one", not_after=_at(2031))[0]
    second = issue(*make_ca("B"), "two", not_after=_at(2032))[0]
    pem = first.public_bytes(Encoding.PEM) + second.public_bytes(Encoding.PEM)
    expiries = read_expiries("ca", pem)
    assert [(e.subject, e.not_after) for e in expiries] == [
        ("one", _at(2031).timestamp()), ("two", _at(2032).timestamp())]
    assert expiries[0].serial == format(first.serial_number, "x")


def test_broker_and_ca_certificates_and_a_rotation(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    collector = CertificateCollector(ServerTLS(pki.broker_cert, pki.broker_key, pki.ca,
                                               "required"))
    before = samples(collector)
    assert set(before) == {("broker", "broker"), ("ca", "Odradek dev CA")}
    ca_cert, ca_key = load_pair(pki.ca, pki.ca_key)
    write_pair(*issue(ca_cert, ca_key, "broker", not_after=_at(2030)), pki.broker_cert,
               pki.broker_key)
    after = samples(collector)
    assert after[("broker", "broker")] == _at(2030).timestamp()
    assert after[("ca", "Odradek dev CA")] == before[("ca", "Odradek dev CA")]


def test_an_unreadable_file_keeps_the_last_reading(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    collector = CertificateCollector(ServerTLS(pki.broker_cert, pki.broker_key))
    before = samples(collector)
    pki.broker_cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n")
    assert samples(collector) == before


def _at(year: int) -> dt.datetime:
    return dt.datetime(year, 1, 1, tzinfo=dt.UTC)
