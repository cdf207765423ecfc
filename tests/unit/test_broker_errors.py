"""The broker's error model: reasons know no protocol, and the gRPC front end maps every
reason to a status code."""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
import pytest

from odradek.broker.errors import BrokerError, to_broker_error
from odradek.broker.grpc.status import STATUS_CODES, status_code, to_status
from odradek.broker.metadata.validation import MetadataError
from odradek.broker.reasons import Reason, reason_of
from odradek.records import InvalidRecordError
from odradek.storage import ConfigError

BROKER = Path(__file__).parents[2] / "odradek" / "broker"
# Domain modules that already know no protocol; the rest follow as they are separated.
PROTOCOL_FREE = ["errors.py", "reasons.py", "names.py", "regressions.py", "metadata",
                 "replication", "groups/state.py", "groups/assignors.py", "groups/records.py",
                 "groups/replay.py", "auth/authorizer.py", "auth/sessions.py", "topics",
                 "data_dir.py"]


def test_every_reason_has_a_grpc_status() -> None:
    assert set(STATUS_CODES) == set(Reason)


@pytest.mark.parametrize(("reason", "code"), [
    (Reason.NOT_LEADER, grpc.StatusCode.UNAVAILABLE),
    (Reason.OFFSET_OUT_OF_RANGE, grpc.StatusCode.OUT_OF_RANGE),
    (Reason.PRODUCER_FENCED, grpc.StatusCode.FAILED_PRECONDITION),
    (Reason.TOPIC_AUTHORIZATION_FAILED, grpc.StatusCode.PERMISSION_DENIED),
])
def test_status_carries_code_message_and_reason(reason: Reason, code: grpc.StatusCode) -> None:
    error = BrokerError(reason, "what went wrong", {"topic": "t"})
    assert status_code(error) == code
    status = to_status(error)
    assert status.code == code and status.details == "what went wrong"
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert reason.value.encode() in details and b"odradek.io" in details


def test_lower_layers_map_to_reasons() -> None:
    assert to_broker_error(InvalidRecordError("CORRUPT_RECORD", "crc")).reason == \
        Reason.CORRUPT_RECORD  # type: ignore[union-attr]
    assert to_broker_error(ConfigError("bad")).reason == Reason.INVALID_CONFIG  # type: ignore[union-attr]
    assert to_broker_error(MetadataError(Reason.TOPIC_ALREADY_EXISTS, "x")).reason == \
        Reason.TOPIC_ALREADY_EXISTS  # type: ignore[union-attr]
    assert to_broker_error(ValueError("unexpected")) is None
    assert reason_of("NOT_A_REASON") == Reason.INVALID_REQUEST


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_domain_modules_import_neither_grpc_nor_protobuf() -> None:
    files = [f for entry in PROTOCOL_FREE for f in
             ((BROKER / entry).rglob("*.py") if (BROKER / entry).is_dir() else [BROKER / entry])]
    offenders = {str(f.relative_to(BROKER)): sorted(
        m for m in _imports(f) if m.split(".")[0] in ("grpc", "google") or "odradek.v1" in m
        or m.startswith("odradek.broker.grpc")) for f in files}
    assert {f: m for f, m in offenders.items() if m} == {}
