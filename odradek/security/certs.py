"""Certificates for development and tests, made with the ``cryptography`` package: a
throwaway CA, and certificates it signs for brokers (server and client use, SANs for
127.0.0.1 and localhost) and for clients."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey
LOCAL_NAMES = ("127.0.0.1", "localhost")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Odradek"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_ca(common_name: str = "Odradek dev CA", days: int = 365) -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def issue(
    ca_cert: x509.Certificate,
    ca_key: Key,
    common_name: str,
    *,
    sans: tuple[str, ...] = LOCAL_NAMES,
    server: bool = True,
    client: bool = True,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    serial: int | None = None,
) -> tuple[x509.Certificate, Key]:
    """A certificate signed by the CA; brokers need both server and client use (they
    dial each other with the same identity)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    names: list[x509.GeneralName] = []
    for san in sans:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (x509.CertificateBuilder()
               .subject_name(_name(common_name)).issuer_name(ca_cert.subject)
               .public_key(key.public_key())
               .serial_number(serial if serial is not None else x509.random_serial_number())
               .not_valid_before(not_before or now - dt.timedelta(minutes=5))
               .not_valid_after(not_after or now + dt.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _write(path: Path, data: bytes, private: bool = False) -> None:
    """Atomically (write aside, then rename), so a reloading broker never reads half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    if private:
        os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_pair(cert: x509.Certificate, key: Key, cert_path: Path, key_path: Path) -> None:
    """Key first, then certificate: the certificate's change is the one that completes."""
    _write(key_path, key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def load_pair(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, Key]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


@dataclass(frozen=True)
class Pki:
    """Files of a development PKI: the CA, one broker identity, one client identity."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca-key.pem"

    @property
    def broker_cert(self) -> Path:
        return self.directory / "broker.pem"

    @property
    def broker_key(self) -> Path:
        return self.directory / "broker-key.pem"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.directory / "client-key.pem"


def make_pki(directory: Path, common_name: str = "Odradek dev CA",
             sans: tuple[str, ...] = LOCAL_NAMES) -> Pki:
    """A CA, a broker certificate (server and client use, ``sans``) and a client
    certificate (client use), as PEM files under ``directory``; made once, reused after."""
    pki = Pki(directory)
    if all(p.exists() for p in (pki.ca, pki.ca_key, pki.broker_cert, pki.broker_key,
                                pki.client_cert, pki.client_key)):
        return pki
    ca_cert, ca_key = make_ca(common_name)
    write_pair(ca_cert, ca_key, pki.ca, pki.ca_key)
    write_pair(*issue(ca_cert, ca_key, "broker", sans=sans), pki.broker_cert, pki.broker_key)
    write_pair(*issue(ca_cert, ca_key, "client", sans=(), server=False),
               pki.client_cert, pki.client_key)
    return pki
