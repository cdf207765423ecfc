"""BrokerError as the simulation makes and reads it, whichever shape it has.

On this branch a BrokerError carries a gRPC status code and a reason string; main is
moving to a protocol-neutral ``BrokerError(Reason, message, metadata)`` with the gRPC
codes in ``odradek/broker/grpc/status.py``. The simulation only needs "make one with
this reason" and "would the gRPC front end answer it UNAVAILABLE or DEADLINE_EXCEEDED"
(what the controller client retries), so it asks here and works on both."""

from __future__ import annotations

import inspect
from typing import Any

import grpc

from odradek.broker.errors import BrokerError

RETRIABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_HAS_CODE = "code" in inspect.signature(BrokerError.__init__).parameters
_CODES = {"INTERNAL": grpc.StatusCode.INTERNAL}


def make_error(reason: str, message: str, metadata: dict[str, str] | None = None
               ) -> BrokerError:
    if _HAS_CODE:
        code = _CODES.get(reason, grpc.StatusCode.UNAVAILABLE)
        return BrokerError(code, reason, message, metadata)  # type: ignore[call-arg, arg-type]
    from odradek.broker import errors
    reason_type: Any = errors.Reason  # type: ignore[attr-defined]
    return BrokerError(reason_type(reason), message, metadata)  # type: ignore[call-arg]


def status_code(error: BrokerError) -> grpc.StatusCode:
    if _HAS_CODE:
        code: grpc.StatusCode = error.code  # type: ignore[attr-defined]
        return code
    from odradek.broker.grpc import status  # type: ignore[import-not-found]
    mapped: grpc.StatusCode = status.status_code(error)
    return mapped
