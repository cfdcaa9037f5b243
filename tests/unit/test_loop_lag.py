"""The event loop's lag, measured in every service (`sync_event_loop_lag_seconds`, ADR 0059): a step
that holds the loop shows as lag; an idle loop shows next to none."""

from __future__ import annotations

import asyncio
import contextlib
import time

from shared.metrics import LoopLag


async def test_a_step_that_holds_the_loop_shows_as_its_lag() -> None:
    lags: list[float] = []
    probe = asyncio.create_task(LoopLag(record=lags.append, every_s=0.01).run())
    try:
        await asyncio.sleep(0.05)
        idle = list(lags)
        time.sleep(0.08)  # a synchronous step of 80 ms, as a full collection was
        await asyncio.sleep(0.03)
    finally:
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe
    assert idle and min(idle) < 0.02
    assert max(lags) >= 0.06
    assert all(lag >= 0 for lag in lags)
    count = len(lags)
    await asyncio.sleep(0.03)
    assert len(lags) == count  # stopped: nothing more recorded
