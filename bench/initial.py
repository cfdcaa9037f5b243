"""Initial sync: one mailbox of `events` events and `contacts` contacts into an empty ERP.

The mailbox is filled first (as the user made it, no notifications); the clock starts when the
representative is created in the ERP (which switches the user on: subscriptions, resync, first
delta) and stops when the ERP holds every item. Progress is read from the ERP's counts once a
second. The run is bounded by `budget_s`: if the sync isn't done by then, the figure is
extrapolated from the rate of the last `tail_s` seconds and marked so (`extrapolated: true`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.e2e import Slots
from bench.seed import (
    User,
    add_mailbox,
    add_representative,
    contact_body,
    erp_total,
    event_body,
    rep_code,
    rep_email,
    seed_items,
)
from bench.stack import Stack


async def run(stack: Stack, *, events: int, contacts: int, budget_s: float, tail_s: float = 20.0) -> dict[str, Any]:
    code, email = rep_code(0, "I"), rep_email(0, "I")
    async with stack.sim() as sim:
        box = await add_mailbox(sim, email)
    user = User(code, email, str(box["id"]), str(box["defaultCalendarId"]), str(box["defaultTodoListId"]))
    slots = Slots(first_day=1, minutes=30)
    t_seed = time.perf_counter()
    await seed_items(stack, user, "events", [event_body(f"initial {i}", slots.take(user)) for i in range(events)])
    await seed_items(stack, user, "contacts", [contact_body("Init", i) for i in range(contacts)])
    seeded_s = time.perf_counter() - t_seed
    target = events + contacts
    progress: list[tuple[float, int]] = []
    async with stack.erp() as erp:
        meter = stack.cpu_meter()
        meter.start()
        start = time.perf_counter()
        await add_representative(erp, code, email)
        done = 0
        while True:
            await asyncio.sleep(1.0)
            done = await erp_total(erp, "activities", representative=code) + await erp_total(
                erp, "contacts", representative=code
            )
            now = time.perf_counter() - start
            progress.append((now, done))
            if done >= target or now > budget_s:
                break
        meter.stop()
    elapsed = progress[-1][0]
    complete = done >= target
    recent = [p for p in progress if p[0] >= elapsed - tail_s]
    rate = (recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0]) if len(recent) > 1 else 0.0
    seconds: float | None
    if complete:
        # The last poll overshoots by up to a second: take the first poll that saw everything.
        seconds = next(t for t, n in progress if n >= target)
    else:
        seconds = elapsed + (target - done) / rate if rate > 0 else None
    return {
        "events": events,
        "contacts": contacts,
        "seeded_in_s": round(seeded_s, 1),
        "complete": complete,
        "extrapolated": not complete,
        "items_done": done,
        "measured_s": round(elapsed, 1),
        "initial_sync_s": round(seconds, 1) if seconds is not None else None,
        "recent_items_per_s": round(rate, 1),
        "cpu_s": meter.used,
        "cpu_ms_per_item": meter.per_item_ms(done),
        "progress": [(round(t, 1), n) for t, n in progress[:: max(1, len(progress) // 30)]],
    }
