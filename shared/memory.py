"""Process memory settings applied at service start."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(default: int = 2) -> bool:
    """Cap glibc's malloc arenas (`MALLOC_ARENA_MAX`, default 2) for the threads created from now on.

    glibc gives each thread that allocates its own arena (up to 8 per core); the database drivers'
    worker threads then keep several mostly empty arenas of their own. Two arenas cost these
    services nothing measurable in CPU and saved about 6 MB of RSS in sync-core (docs/benchmarks.md,
    session 3). An explicit `MALLOC_ARENA_MAX` in the environment is glibc's own and wins. Returns
    whether the cap was set (False off glibc)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl, macOS): nothing to cap
    return bool(mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(default)))
