"""SCRAM: RFC 7677's example (SHA-256, the same code with another hash), SHA-512 round
trips, an independent SHA-512 computation, and refusals."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.security import scram

# RFC 7677, section 3.
RFC_CLIENT_FIRST = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SERVER_FIRST = ("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
RFC_CLIENT_FINAL = ("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
RFC_SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_rfc7677_example_client_side() -> None:
    client = scram.ClientExchange("user", "pencil", nonce="rOprNGfwEbeRWgbNEkqO",
                                  hash_name="sha256")
    assert client.first() == RFC_CLIENT_FIRST
    assert client.final(RFC_SERVER_FIRST) == RFC_CLIENT_FINAL
    client.verify_server(RFC_SERVER_FINAL)


def test_rfc7677_example_server_side() -> None:
    credential = scram.make_credential("pencil", 4096, base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="),
                                       hash_name="sha256")
    name, nonce, bare = scram.parse_client_first(RFC_CLIENT_FIRST)
    assert name == "user"
    server = scram.ServerExchange(credential, nonce, bare, hash_name="sha256")
    assert server.first(RFC_SERVER_NONCE) == RFC_SERVER_FIRST
    assert server.final(RFC_CLIENT_FINAL) == RFC_SERVER_FINAL


def _independent_stored_key(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha512").digest()
    return hashlib.sha512(client_key).digest(), hmac.new(salted, b"Server Key", "sha512").digest()


def test_sha512_credential_matches_an_independent_computation() -> None:
    salt = bytes(range(32))
    c = scram.make_credential("s3cret-pässword", 4096, salt)
    assert (c.stored_key, c.server_key) == _independent_stored_key("s3cret-pässword", salt, 4096)
    assert len(c.stored_key) == len(c.server_key) == 64


def _exchange(user: str, password: str, credential: scram.ScramCredential) -> None:
    client = scram.ClientExchange(user, password)
    name, nonce, bare = scram.parse_client_first(client.first())
    assert name == user
    server = scram.ServerExchange(credential, nonce, bare)
    final = server.final(client.final(server.first()))
    client.verify_server(final)


@settings(max_examples=20, deadline=None)
@given(user=st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s),
       password=st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=30))
def test_round_trip_any_name_and_password(user: str, password: str) -> None:
    _exchange(user, password, scram.make_credential(password, 4096))


def test_wrong_password_fails_at_the_proof() -> None:
    credential = scram.make_credential("right", 4096)
    with pytest.raises(scram.ScramError, match="proof does not verify"):
        _exchange("alice", "wrong", credential)


def test_a_server_without_the_key_cannot_fake_its_signature() -> None:
    client = scram.ClientExchange("alice", "pw")
    name, nonce, bare = scram.parse_client_first(client.first())
    real = scram.make_credential("pw", 4096)
    # An impostor knows the salt (it is public) but not the ServerKey.
    fake = scram.ScramCredential(real.salt, real.iterations, real.stored_key, b"\x00" * 64)
    server = scram.ServerExchange(fake, nonce, bare)
    final = server.final(client.final(server.first()))
    with pytest.raises(scram.ScramError, match="not the real server"):
        client.verify_server(final)


@pytest.mark.parametrize("message", [
    "", "y,,n=a,r=b", "n,,r=b", "n,,n=,r=abc", "n,,n=a", "n,,n=a=2X,r=b", "n,,n=a,r=a b",
])
def test_malformed_client_first_is_refused(message: str) -> None:
    with pytest.raises(scram.ScramError):
        scram.parse_client_first(message)


def test_client_refuses_few_iterations_and_foreign_nonce() -> None:
    client = scram.ClientExchange("a", "b", nonce="abc")
    client.first()
    with pytest.raises(scram.ScramError, match="too few iterations"):
        client.final("r=abcdef,s=AAAA,i=1000")
    with pytest.raises(scram.ScramError, match="does not extend"):
        client.final("r=xyzdef,s=AAAA,i=4096")


def test_names_with_comma_and_equals_round_trip() -> None:
    _exchange("a,b=c", "pw", scram.make_credential("pw", 4096))
