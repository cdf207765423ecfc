"""What the listener does with frames that are not good requests: a bad length or a body
that does not parse closes that connection; an unknown API or version is answered
UNSUPPORTED_VERSION on a connection that stays usable; the broker keeps serving."""

from __future__ import annotations

import socket
import struct

from tests.kafka.conftest import KafkaBroker

UNSUPPORTED_VERSION = 35


def header(api_key: int, version: int, correlation_id: int, flexible: bool) -> bytes:
    client = b"frames-test"
    out = struct.pack(">hhih", api_key, version, correlation_id, len(client)) + client
    return out + (b"\0" if flexible else b"")


def api_versions_v3(correlation_id: int) -> bytes:
    name, version = b"odradek-test", b"1"
    body = bytes([len(name) + 1]) + name + bytes([len(version) + 1]) + version + b"\0"
    return header(18, 3, correlation_id, True) + body


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def connect(broker: KafkaBroker) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", broker.kafka_port), timeout=10)
    sock.settimeout(10)
    return sock


def read_frame(sock: socket.socket) -> bytes | None:
    """The next response, or None once the broker closed the connection."""
    head = _read(sock, 4)
    if head is None:
        return None
    (length,) = struct.unpack(">i", head)
    return _read(sock, length)


def _read(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def api_versions_works(sock: socket.socket, correlation_id: int) -> bool:
    sock.sendall(frame(api_versions_v3(correlation_id)))
    answer = read_frame(sock)
    assert answer is not None
    got_id, error = struct.unpack_from(">ih", answer)
    return got_id == correlation_id and error == 0


def test_api_versions_flexible_lists_the_apis(kafka_broker: KafkaBroker) -> None:
    with connect(kafka_broker) as sock:
        sock.sendall(frame(api_versions_v3(7)))
        answer = read_frame(sock)
    assert answer is not None
    # Header v0 (no tagged fields), then error code, then a compact array of api keys.
    correlation_id, error, count = struct.unpack_from(">ihB", answer)
    assert (correlation_id, error) == (7, 0)
    keys = {}
    for i in range(count - 1):
        key, low, high = struct.unpack_from(">hhh", answer, 7 + i * 7)
        keys[key] = (low, high)
    assert keys[18] == (0, 3) and keys[0][1] >= 7 and keys[1][1] >= 11 and 11 in keys


def test_bad_lengths_close_the_connection_and_the_broker_serves_on(
        kafka_broker: KafkaBroker) -> None:
    for length in (-1, 200 * 1024 * 1024, -2147483648):
        with connect(kafka_broker) as sock:
            sock.sendall(struct.pack(">i", length) + b"garbage")
            assert read_frame(sock) is None
    with connect(kafka_broker) as sock:
        assert api_versions_works(sock, 1)


def test_truncated_and_garbage_requests_close_the_connection(
        kafka_broker: KafkaBroker) -> None:
    metadata_v12 = header(3, 12, 5, True)  # no body at all
    garbage = header(3, 12, 6, True) + b"\xff" * 64
    for payload in (metadata_v12, b"\x01\x02", api_versions_v3(3)[:-4], garbage):
        with connect(kafka_broker) as sock:
            sock.sendall(frame(payload))
            assert read_frame(sock) is None
    with connect(kafka_broker) as sock:
        assert api_versions_works(sock, 2)


def test_unknown_api_and_versions_are_answered_and_the_connection_stays(
        kafka_broker: KafkaBroker) -> None:
    with connect(kafka_broker) as sock:
        sock.sendall(frame(header(9999, 0, 11, False)))
        answer = read_frame(sock)
        assert answer is not None
        assert struct.unpack_from(">ih", answer) == (11, UNSUPPORTED_VERSION)
        # A known API at a version not served (Produce v0): its schema, error set.
        sock.sendall(frame(header(0, 0, 12, False) + b"\xff\xff\x00\x01\x00\x00\x03\xe8"
                           + b"\x00\x00\x00\x00"))
        answer = read_frame(sock)
        assert answer is not None and struct.unpack_from(">i", answer) == (12,)
        # ApiVersions at a version not served: a v0 answer, error set, versions listed.
        sock.sendall(frame(header(18, 99, 13, False)))
        answer = read_frame(sock)
        assert answer is not None
        correlation_id, error, count = struct.unpack_from(">ihi", answer)
        assert (correlation_id, error) == (13, UNSUPPORTED_VERSION) and count > 5
        assert api_versions_works(sock, 14)


def test_a_clean_stop_with_connections_open_logs_no_error(kafka_broker: KafkaBroker) -> None:
    sock = connect(kafka_broker)
    try:
        assert api_versions_works(sock, 1)
        assert kafka_broker.stop() == 0
    finally:
        sock.close()
    log = kafka_broker.log()
    assert "broker 0 stopped" in log
    assert " ERROR " not in log, log[-3000:]
