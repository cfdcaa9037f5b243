"""Process memory settings applied at service start."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter
# Allocations of tracked objects (less deallocations) between two young-generation collections;
# CPython's default is 700. See `settle_heap`.
GC_GEN0_THRESHOLD = 10_000


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


class _Heap:
    """The process's collector settings, which its services share: settled by the first service
    that starts, restored when the last one stops (in production a process runs one service; tests
    run several at once in one process)."""

    def __init__(self) -> None:
        self.services = 0
        self.before = gc.get_threshold()


_heap = _Heap()


def settle_heap(gen0_threshold: int = GC_GEN0_THRESHOLD) -> None:
    """At the end of a service's start-up: what start-up built (modules, the app, mappers, schemas,
    150,000-165,000 objects) lives as long as the process, so it goes out of the cyclic collector's
    sight (`gc.freeze`), and the young generation is collected every `gen0_threshold` allocations
    instead of every 700. Done once per process, by its first service to start; `unsettle_heap` at
    every service's stop.

    Measured under load (docs/benchmarks.md, session 12; ADR 0059): each full collection walked that
    whole heap and stopped sync-core's event loop for 140-200 ms, two or three times in 20 s; frozen,
    5-13 ms. Young collections every 700 allocations took a third of a second of CPU per process in
    20 s at 200 changes/s; every 10,000 allocations, less than half of that, as most objects of a
    message are freed by reference counting before a collection comes. Only reference cycles wait
    longer to be freed, and they are few."""
    _heap.services += 1
    if _heap.services > 1:
        return  # another service of this process settled it
    _heap.before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0_threshold, *_heap.before[1:])


def unsettle_heap() -> None:
    """At a service's stop (after its `settle_heap`): when no other service of the process is left,
    the heap is collectable again and the thresholds are as they were."""
    if _heap.services == 0:
        return
    _heap.services -= 1
    if _heap.services == 0:
        gc.set_threshold(*_heap.before)
        gc.unfreeze()
