"""SASL on the Kafka listener: SaslHandshake (v1: the tokens then travel in
SaslAuthenticate requests) and SCRAM-SHA-512 against the same users as gRPC, through the
same broker-local exchanges (auth/sessions.py). A connection that authenticates acts as
its user from then on; one that does not is ANONYMOUS (or its TLS certificate's
principal), which authorization then treats as on gRPC."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from odradek.broker.auth.guard import Guard
from odradek.broker.auth.sessions import AuthenticationFailed
from odradek.broker.kafka import codec
from odradek.broker.kafka import errors as err
from odradek.security import scram

log = logging.getLogger("odradek.broker.kafka")

SASL_AUTHENTICATE = 36
# Longer SCRAM messages are refused before they are parsed (as on gRPC).
MAX_SCRAM_MESSAGE = 4096


@dataclass
class Connection:
    """What one Kafka connection has established."""
    host: str
    certificate: bytes | None = None
    mechanism: str | None = None  # after a good SaslHandshake
    exchange_id: str | None = None  # between the two SCRAM messages
    token: str | None = None  # the session, once authenticated
    close: bool = False  # close after this answer (a failed authentication)


def handshake(version: int, body: Any, conn: Connection) -> Any:
    cls = codec.response_schema(codec.SASL_HANDSHAKE, version)
    if body.mechanism != scram.MECHANISM:
        return codec.make(cls, error_code=err.UNSUPPORTED_SASL_MECHANISM,
                          mechanisms=(scram.MECHANISM,))
    if conn.token is not None or conn.mechanism is not None:
        return codec.make(cls, error_code=err.ILLEGAL_SASL_STATE,
                          mechanisms=(scram.MECHANISM,))
    conn.mechanism = body.mechanism
    return codec.make(cls, error_code=err.NONE, mechanisms=(scram.MECHANISM,))


def authenticate(version: int, body: Any, conn: Connection, guard: Guard) -> Any:
    cls = codec.response_schema(SASL_AUTHENTICATE, version)

    def refuse(code: int, message: str) -> Any:
        conn.close = True  # Kafka closes a connection whose authentication failed
        return codec.make(cls, error_code=code, error_message=message, auth_bytes=b"")

    if conn.mechanism is None or conn.token is not None:
        return refuse(err.ILLEGAL_SASL_STATE, "SaslAuthenticate needs a SaslHandshake first")
    data = bytes(body.auth_bytes)
    if len(data) > MAX_SCRAM_MESSAGE:
        return refuse(err.SASL_AUTHENTICATION_FAILED, "authentication failed")
    try:
        text = data.decode("utf-8")
        if conn.exchange_id is None:
            conn.exchange_id, first = guard.sessions.start(text, peer=conn.host)
            return codec.make(cls, error_code=err.NONE, error_message=None,
                              auth_bytes=first.encode())
        exchange, conn.exchange_id = conn.exchange_id, None
        final, token, _ = guard.sessions.finish(exchange, text)
    except (UnicodeDecodeError, scram.ScramError, AuthenticationFailed) as exc:
        # One message for every failure: a client cannot tell a wrong password from an
        # unknown user.
        log.info("SASL authentication failed from %s (%s)", conn.host, str(exc)[:200])
        return refuse(err.SASL_AUTHENTICATION_FAILED, "authentication failed")
    conn.token = token
    return codec.make(cls, error_code=err.NONE, error_message=None,
                      auth_bytes=final.encode(),
                      session_lifetime=int(guard.sessions.lifetime_s * 1000))



def abandon(conn: Connection, guard: Guard) -> None:
    """The connection ended: an exchange it left half done stops counting against its
    address (a Kafka connection is the exchange's whole lifetime)."""
    if conn.exchange_id is not None:
        guard.sessions.abandon(conn.exchange_id)
        conn.exchange_id = None
