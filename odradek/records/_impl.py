"""The one place that picks the record codec: the compiled one (odradek.records._fast,
built by setup.py when a C compiler is there) unless ODRADEK_PURE_PYTHON=1 or it is not
built; otherwise the pure-Python one (odradek.records._pure). Read once, at import."""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING

from odradek.records import _pure


def _load() -> tuple[ModuleType, str]:
    if os.environ.get("ODRADEK_PURE_PYTHON", "").strip() not in ("", "0"):
        return _pure, "pure"
    try:
        from odradek.records import _fast
    except ImportError:
        return _pure, "pure"
    return _fast, "compiled"


CODEC, IMPLEMENTATION = _load()

if TYPE_CHECKING:
    # Both modules have these names with the same types (_fast.pyi).
    from odradek.records._pure import RecordsBuffer, decode_records, frame_batch
else:
    RecordsBuffer = CODEC.RecordsBuffer
    frame_batch = CODEC.frame_batch
    decode_records = CODEC.decode_records

__all__ = ["CODEC", "IMPLEMENTATION", "RecordsBuffer", "decode_records", "frame_batch"]
