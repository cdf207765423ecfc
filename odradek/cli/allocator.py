"""glibc malloc settings for a broker process.

A broker allocates and frees buffers of hundreds of KiB for every batch (gRPC messages,
batch copies, envelopes). With glibc's defaults, buffers that large are mapped and
unmapped, and the freed top of the heap is handed back to the kernel as soon as it passes
128 KiB: the next batch takes the memory again, a zeroed page fault at a time, which in a
VM costs more still. Taking such buffers from the heap and keeping up to 256 MiB of freed
heap in the process cut a broker's CPU per 1 KB record by a quarter on the 2-core
benchmark machine (docs/benchmarks.md). A broker's resident memory stays near its peak.

Nothing is changed when the user chose for themselves: any MALLOC_* environment variable,
or ODRADEK_MALLOC_TUNING=off."""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from collections.abc import Mapping

MIB = 1024 * 1024
# mallopt parameters (malloc.h); a value set this way also stops glibc adapting it.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
SETTINGS = ((M_MMAP_THRESHOLD, 32 * MIB),  # glibc's largest: buffers below it come from the heap
            (M_TRIM_THRESHOLD, 256 * MIB))


def tune_malloc(environ: Mapping[str, str] = os.environ) -> bool:
    """Applies SETTINGS with mallopt; True if they were all taken."""
    if environ.get("ODRADEK_MALLOC_TUNING", "on").lower() in ("off", "0", "false", "no"):
        return False
    if any(name.startswith("MALLOC_") for name in environ):
        return False
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS)
