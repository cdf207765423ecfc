"""TLS on the Kafka listener with the broker's own identity (the files of --tls-cert,
--tls-key and --tls-ca, and its client-auth policy), reloaded without a restart as the
gRPC listener's are: each handshake looks at the files' stamps and, when they changed,
moves the connection to a context made from the new files."""

from __future__ import annotations

import logging
import ssl
import threading

from odradek.security.tls import ServerTLS

log = logging.getLogger("odradek.broker.kafka")


class KafkaTLS:
    def __init__(self, tls: ServerTLS) -> None:
        self.tls = tls
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self.context = self._make()
        self.reloads = 0

    def _stat(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for path in (self.tls.cert, self.tls.key, self.tls.ca):
            if path is None:
                continue
            try:
                st = path.stat()
                stamps.append((st.st_mtime_ns, st.st_size))
            except OSError:
                stamps.append((-1, -1))
        return tuple(stamps)

    def _make(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.tls.cert, self.tls.key)
        if self.tls.ca is not None:
            context.load_verify_locations(cafile=str(self.tls.ca))
        context.verify_mode = ssl.CERT_REQUIRED if self.tls.require_client_auth \
            else ssl.CERT_OPTIONAL if self.tls.ca is not None else ssl.CERT_NONE
        context.sni_callback = self._on_handshake
        return context

    def _on_handshake(self, sock: ssl.SSLObject | ssl.SSLSocket, name: str | None,
                      context: ssl.SSLContext) -> None:
        with self._lock:
            stamp = self._stat()
            if stamp != self._stamp:
                try:
                    fresh = self._make()
                except (OSError, ssl.SSLError, ValueError) as exc:
                    # Half-written files: keep the old certificate, try again next time.
                    log.warning("Kafka listener: TLS files changed but cannot be loaded "
                                "yet: %s", exc)
                else:
                    self.context, self._stamp = fresh, stamp
                    self.reloads += 1
                    log.info("Kafka listener: TLS certificate reloaded from %s",
                             self.tls.cert)
            if context is not self.context:
                sock.context = self.context


def peer_certificate(ssl_object: ssl.SSLObject | None) -> bytes | None:
    """The client's certificate as PEM (what the guard reads principals from)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return ssl.DER_cert_to_PEM_cert(der).encode() if der else None
