"""The broker's malloc settings: taken on glibc, left alone when the user chose."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from odradek.cli.allocator import tune_malloc

# In a process of its own: a 1 MiB buffer, freed, stays in the heap once tuned (by
# default glibc maps the first buffer that large and unmaps it when it is freed).
PROBE = """
import ctypes, sys
from odradek.cli.allocator import tune_malloc
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
tuned = tune_malloc()
libc.free(libc.malloc(1 << 20))
print(tuned, libc.mallinfo2().fordblks >= 1 << 20)
"""

glibc = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MALLOC_") and k != "ODRADEK_MALLOC_TUNING"}
    return subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env},
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()


@glibc
def test_freed_buffers_stay_in_the_heap() -> None:
    assert _probe() == "True True"
    assert _probe(ODRADEK_MALLOC_TUNING="off") == "False False"


def test_the_users_choice_is_left_alone() -> None:
    assert not tune_malloc({"MALLOC_ARENA_MAX": "2"})
    assert not tune_malloc({"ODRADEK_MALLOC_TUNING": "off"})
