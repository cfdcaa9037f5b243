"""Services cap glibc's malloc arenas at start (issue 10: `max_rss_mb`), unless the environment says, and
settle their heap once started (ADR 0059: the collector's pauses under load)."""

from __future__ import annotations

import gc
import platform

import pytest

from shared.memory import GC_GEN0_THRESHOLD, limit_malloc_arenas, settle_heap, unsettle_heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_malloc_arenas_are_capped_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas() is True


def test_an_explicit_malloc_arena_max_is_left_to_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False


def test_a_settled_heap_is_frozen_and_collected_less_often_then_restored() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    built = [["at start-up"]]  # a list is always tracked by the collector
    settle_heap()
    try:
        # What start-up built is out of the collector's sight; young objects are collected every
        # GC_GEN0_THRESHOLD allocations, the older generations as before.
        assert gc.get_freeze_count() > 1000
        assert gc.is_tracked(built) and not any(x is built for x in gc.get_objects())
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, *before[1:])

        # A second service of the same process (tests) finds it settled; the first one's stop
        # leaves it so while the second one runs.
        # (What start-up built is still frozen: the count itself may fall, as any other thread of
        # the test process can free a frozen object meanwhile.)
        settle_heap()
        unsettle_heap()
        assert gc.get_freeze_count() > 1000
        assert not any(x is built for x in gc.get_objects())
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, *before[1:])
    finally:
        unsettle_heap()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
    assert any(x is built for x in gc.get_objects())
    unsettle_heap()  # a stop with nothing settled changes nothing
    assert gc.get_threshold() == before
