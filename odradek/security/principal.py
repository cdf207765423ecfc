"""Principals from client certificates: `User:<CN>` by default, or the first mapping rule
that matches.

Rules (broker flag --tls-principal-rule, repeatable, tried in order):
  RULE:<regex>/<replacement>/   the regex must match the whole subject, written as RFC 4514
                                with the most specific part first ("CN=alice,OU=ops,O=acme");
                                the replacement may use $1, $2... for its groups
  SAN:<regex>/<replacement>/    the same over each subject alternative name, written as
                                "DNS:host", "URI:spiffe://...", "IP:10.0.0.1", "EMAIL:a@b"
  DEFAULT                       the subject's common name
The result is the user name; the principal is "User:<name>". A certificate that no rule
maps (and no DEFAULT at the end) has no principal of its own: it is ANONYMOUS."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID


class PrincipalRuleError(ValueError):
    pass


@dataclass(frozen=True)
class PrincipalRule:
    kind: str  # "RULE", "SAN" or "DEFAULT"
    pattern: re.Pattern[str] | None = None
    replacement: str = ""

    @classmethod
    def parse(cls, text: str) -> PrincipalRule:
        text = text.strip()
        if text == "DEFAULT":
            return cls("DEFAULT")
        kind, sep, rest = text.partition(":")
        if kind not in ("RULE", "SAN") or not sep or not rest.endswith("/"):
            raise PrincipalRuleError(
                f"principal rule {text!r}: expected RULE:<regex>/<replacement>/, "
                "SAN:<regex>/<replacement>/ or DEFAULT")
        regex, slash, replacement = rest[:-1].rpartition("/")
        if not slash or not regex:
            raise PrincipalRuleError(f"principal rule {text!r}: no /<replacement>/")
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            raise PrincipalRuleError(f"principal rule {text!r}: bad regex: {exc}") from None
        return cls(kind, pattern, replacement)

    def apply(self, value: str) -> str | None:
        assert self.pattern is not None
        match = self.pattern.fullmatch(value)
        if match is None:
            return None
        return re.sub(r"\$(\d+)", lambda m: match.group(int(m.group(1))) or "",
                      self.replacement)


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out = [f"DNS:{v}" for v in ext.get_values_for_type(x509.DNSName)]
    out += [f"URI:{v}" for v in ext.get_values_for_type(x509.UniformResourceIdentifier)]
    out += [f"IP:{v}" for v in ext.get_values_for_type(x509.IPAddress)]
    out += [f"EMAIL:{v}" for v in ext.get_values_for_type(x509.RFC822Name)]
    return out


def _common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def principal_of_certificate(pem: bytes, rules: tuple[PrincipalRule, ...] = ()) -> str | None:
    """"User:<name>" for a PEM certificate, or None when no rule gives a name."""
    cert = x509.load_pem_x509_certificate(pem)
    for rule in rules or (PrincipalRule("DEFAULT"),):
        if rule.kind == "DEFAULT":
            name = _common_name(cert)
        elif rule.kind == "RULE":
            name = rule.apply(cert.subject.rfc4514_string())
        else:
            name = next((n for n in map(rule.apply, _sans(cert)) if n), None)
        if name:
            return f"User:{name}"
    return None
