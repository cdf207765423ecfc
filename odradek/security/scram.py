"""SCRAM-SHA-512 (RFC 5802 with the SHA-512 hash of RFC 7677), written on hashlib and hmac.

Both ends of the exchange live here, as plain functions over the RFC's text messages, so
the broker and the client share one implementation and tests can run a whole exchange in
memory. No channel binding: TLS already protects the messages in transit, so the GS2
header is always "n,," (the client does not support channel binding).

Stored credentials are (salt, iterations, StoredKey, ServerKey): enough for a server to
verify a proof and prove itself, not enough to log in as the user (StoredKey is a hash of
ClientKey, which the proof needs)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

MECHANISM = "SCRAM-SHA-512"
HASH = "sha512"
KEY_BYTES = 64
MIN_ITERATIONS = 4096
DEFAULT_ITERATIONS = 8192
MAX_ITERATIONS = 1_000_000
SALT_BYTES = 32
MIN_SALT_BYTES = 16
NONCE_BYTES = 24
GS2_HEADER = "n,,"


class ScramError(ValueError):
    """A message that does not follow RFC 5802, or a proof or signature that does not
    verify."""


@dataclass(frozen=True)
class ScramCredential:
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def _hmac(key: bytes, msg: bytes, hash_name: str = HASH) -> bytes:
    return hmac.new(key, msg, hash_name).digest()


def _h(data: bytes, hash_name: str = HASH) -> bytes:
    return hashlib.new(hash_name, data).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise ScramError(f"{what} is not base64") from None


def normalize(password: str) -> bytes:
    """The password as the bytes to hash. RFC 5802 asks for SASLprep; we apply the part
    that matters for real passwords (NFKC, what stringprep's mapping mostly amounts to)
    and reject control characters rather than implement all of stringprep."""
    import unicodedata

    text = unicodedata.normalize("NFKC", password)
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise ScramError("a password must not contain control characters")
    return text.encode("utf-8")


def salted_password(password: str, salt: bytes, iterations: int,
                    hash_name: str = HASH) -> bytes:
    return hashlib.pbkdf2_hmac(hash_name, normalize(password), salt, iterations)


def make_credential(password: str, iterations: int = DEFAULT_ITERATIONS,
                    salt: bytes | None = None, hash_name: str = HASH) -> ScramCredential:
    """What the server stores for a password (computed by whoever sets the password)."""
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ScramError(f"iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    return credential_of_salted(salted_password(password, salt, iterations, hash_name),
                                salt, iterations, hash_name)


def credential_of_salted(salted: bytes, salt: bytes, iterations: int,
                         hash_name: str = HASH) -> ScramCredential:
    """The stored credential from a salted password (what Kafka's
    AlterUserScramCredentials sends, so that the password itself never travels)."""
    client_key = _hmac(salted, b"Client Key", hash_name)
    return ScramCredential(salt, iterations, _h(client_key, hash_name),
                           _hmac(salted, b"Server Key", hash_name))


# --- the user name as SCRAM writes it --------------------------------------------------


def _escape_name(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def _unescape_name(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "=":
            code = text[i:i + 3]
            if code == "=2C":
                out.append(",")
            elif code == "=3D":
                out.append("=")
            else:
                raise ScramError("bad escape in the user name")
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _attributes(message: str, what: str) -> list[tuple[str, str]]:
    out = []
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=" or not part[0].isalpha():
            raise ScramError(f"{what}: {part!r} is not an attribute")
        out.append((part[0], part[2:]))
    return out


def _printable_nonce(nonce: str) -> bool:
    return bool(nonce) and all(0x21 <= ord(c) <= 0x7E and c != "," for c in nonce)


def new_nonce() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


# --- client side -----------------------------------------------------------------------


@dataclass
class ClientExchange:
    """One client exchange: first() -> server's first -> final(server_first) -> verify
    the server's final message."""

    username: str
    password: str
    nonce: str = ""
    # SHA-512 here; another hash only to check the code against RFC 7677's SHA-256 example.
    hash_name: str = HASH
    _first_bare: str = ""
    _server_signature: bytes = b""

    def first(self) -> str:
        self.nonce = self.nonce or new_nonce()
        self._first_bare = f"n={_escape_name(self.username)},r={self.nonce}"
        return GS2_HEADER + self._first_bare

    def final(self, server_first: str) -> str:
        attrs = dict(_attributes(server_first, "server-first-message"))
        nonce, salt_b64, iter_text = attrs.get("r"), attrs.get("s"), attrs.get("i")
        if nonce is None or salt_b64 is None or iter_text is None:
            raise ScramError("server-first-message lacks r, s or i")
        if not nonce.startswith(self.nonce) or len(nonce) <= len(self.nonce):
            raise ScramError("the server's nonce does not extend the client's")
        if not iter_text.isdigit() or int(iter_text) < MIN_ITERATIONS:
            raise ScramError(f"the server asks for too few iterations ({iter_text})")
        h = self.hash_name
        salted = salted_password(self.password, _unb64(salt_b64, "salt"), int(iter_text), h)
        without_proof = f"c={_b64(GS2_HEADER.encode())},r={nonce}"
        auth_message = f"{self._first_bare},{server_first},{without_proof}".encode()
        client_key = _hmac(salted, b"Client Key", h)
        signature = _hmac(_h(client_key, h), auth_message, h)
        self._server_signature = _hmac(_hmac(salted, b"Server Key", h), auth_message, h)
        return f"{without_proof},p={_b64(_xor(client_key, signature))}"

    def verify_server(self, server_final: str) -> None:
        attrs = dict(_attributes(server_final, "server-final-message"))
        if "e" in attrs:
            raise ScramError(f"the server refused: {attrs['e']}")
        signature = _unb64(attrs.get("v", ""), "server signature")
        if not hmac.compare_digest(signature, self._server_signature):
            raise ScramError("the server's signature does not verify: not the real server")


# --- server side -----------------------------------------------------------------------


def parse_client_first(message: str) -> tuple[str, str, str]:
    """(user name, client nonce, client-first-message-bare)."""
    if not message.startswith(GS2_HEADER):
        raise ScramError("client-first-message must start with 'n,,' (no channel binding, "
                         "no authorization identity)")
    bare = message[len(GS2_HEADER):]
    attrs = _attributes(bare, "client-first-message")
    if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r":
        raise ScramError("client-first-message must be n=<user>,r=<nonce>")
    name, nonce = _unescape_name(attrs[0][1]), attrs[1][1]
    if not name:
        raise ScramError("client-first-message names no user")
    if not _printable_nonce(nonce):
        raise ScramError("the client nonce must be printable ASCII without commas")
    return name, nonce, bare


@dataclass
class ServerExchange:
    """The server's half, for one user's credential. For a user that does not exist the
    caller passes a made-up credential: the exchange looks the same and fails at the
    proof, so a client cannot tell an unknown user from a wrong password."""

    credential: ScramCredential
    client_nonce: str
    client_first_bare: str
    nonce: str = ""
    server_first: str = ""
    hash_name: str = HASH

    def first(self, server_nonce: str | None = None) -> str:
        self.nonce = self.client_nonce + (server_nonce or new_nonce())
        self.server_first = (f"r={self.nonce},s={_b64(self.credential.salt)},"
                             f"i={self.credential.iterations}")
        return self.server_first

    def final(self, client_final: str) -> str:
        """The server-final-message; ScramError when the proof does not verify."""
        attrs = _attributes(client_final, "client-final-message")
        if len(attrs) < 3 or attrs[0][0] != "c" or attrs[1][0] != "r" or attrs[-1][0] != "p":
            raise ScramError("client-final-message must be c=...,r=...,p=...")
        if _unb64(attrs[0][1], "channel binding") != GS2_HEADER.encode():
            raise ScramError("channel binding data does not match 'n,,'")
        if attrs[1][1] != self.nonce:
            raise ScramError("client-final-message carries another nonce")
        proof = _unb64(attrs[-1][1], "proof")
        without_proof = client_final[:client_final.rindex(",p=")]
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        h = self.hash_name
        signature = _hmac(self.credential.stored_key, auth_message, h)
        if len(proof) != len(signature):
            raise ScramError("the proof has the wrong length")
        client_key = _xor(proof, signature)
        if not hmac.compare_digest(_h(client_key, h), self.credential.stored_key):
            raise ScramError("the proof does not verify")
        return f"v={_b64(_hmac(self.credential.server_key, auth_message, h))}"
