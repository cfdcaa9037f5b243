"""sync-core throughput: items per second while a backlog of many users and mixed kinds drains.

With sync-core stopped, every user gets Outlook events, contacts and To Do tasks (made as the user
would, without notifications) and ERP meetings, tasks and calls (made through the ERP API, so their
`erp.changed` messages wait in the broker); one `graph.changed` per user and collection stands for
the notifications. Then sync-core starts, and the journal's `created` lines time the drain: the
sustained rate is lines / (last − first), start-up excluded.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.e2e import Slots, per_change, request_counts
from bench.seed import (
    User,
    add_users,
    contact_body,
    day_start,
    erp_meeting,
    erp_todo,
    event_body,
    parse_ts,
    seed_items,
    task_body,
    wait_caught_up,
)
from bench.stack import Stack
from shared.bus import Bus
from shared.envelope import Envelope, Kind, MessageType


async def journal_created(stack: Stack, users: set[str], since: float | None = None) -> dict[int, float]:
    """Journal id → time of the `created` lines of `users`, at or after `since` (epoch s; all when None),
    read newest first in pages of 1,000. Rows added while paging shift the later pages down, so a row
    may come twice (the dict keeps it once) but none is skipped."""
    params: dict[str, Any] = {"outcome": "created", "limit": 1000}
    if since is not None:
        params["since"] = datetime.fromtimestamp(since, UTC).isoformat()
    lines: dict[int, float] = {}
    async with stack.ops() as ops:
        offset = 0
        while True:
            r = await ops.get("/journal", params={**params, "offset": offset})
            r.raise_for_status()
            page = r.json()
            lines.update((int(j["id"]), parse_ts(j["at"])) for j in page if j["user"] in users)
            if len(page) < 1000:
                return lines
            offset += len(page)


class CreatedLines:
    """The drain's progress, polled without re-reading what was already seen: each poll asks only for
    lines from `OVERLAP_S` before the newest one seen (a line's time is taken before its commit, so a
    line may appear after a newer one). Answering the poll is sync-core's work, counted in its CPU: re-
    reading every line each second (as before session 13) grew with the backlog, to about a tenth of
    sync-core's samples in a drain of 3,600 items."""

    OVERLAP_S = 3.0

    def __init__(self, stack: Stack, users: set[str]) -> None:
        self._stack = stack
        self._users = users
        self.seen: dict[int, float] = {}

    async def poll(self) -> int:
        since = max(self.seen.values()) - self.OVERLAP_S if self.seen else None
        self.seen.update(await journal_created(self._stack, self._users, since))
        return len(self.seen)


async def _load(stack: Stack, users: list[User], sizes: dict[str, int], tag: str) -> int:
    """The backlog; returns how many items sync-core has to create on the other side."""
    slots = Slots(first_day=3, minutes=30)
    due = day_start(5)
    for user in users:
        await seed_items(
            stack, user, "events", [event_body(f"{tag} ev {i}", slots.take(user)) for i in range(sizes["events"])]
        )
        await seed_items(
            stack, user, "contacts", [contact_body(f"{tag}{user.code}x", i) for i in range(sizes["contacts"])]
        )
        await seed_items(stack, user, "tasks", [task_body(f"{tag} task {i}", due) for i in range(sizes["tasks"])])
    async with stack.erp() as erp:
        for user in users:
            bodies = [erp_meeting(user.code, f"{tag} mtg {i}", slots.take(user)) for i in range(sizes["erp_meetings"])]
            for i in range(sizes["erp_todos"]):
                kind = "task" if i % 2 == 0 else "call"
                bodies.append(erp_todo(user.code, kind, f"{tag} {kind} {i}", due + timedelta(hours=i)))
            for body in bodies:
                (await erp.post("/activities", json=body)).raise_for_status()
    bus = Bus(stack.common_settings(), "bench")
    await bus.connect()
    try:
        for user in users:
            for kind in (Kind.EVENT, Kind.CONTACT, Kind.TASK):
                payload: dict[str, Any] = {"graph_user_id": user.graph_id, "change_type": "created"}
                if kind is Kind.TASK:
                    payload["list_id"] = user.todo_list_id
                await bus.publish(
                    Envelope(
                        type=MessageType.GRAPH_CHANGED, tenant="bench", user=user.email, kind=kind, payload=payload
                    )
                )
    finally:
        await bus.close()
    per_user = sizes["events"] + sizes["contacts"] + sizes["tasks"] + sizes["erp_meetings"] + sizes["erp_todos"]
    return per_user * len(users)


async def run(stack: Stack, *, users: int, sizes: dict[str, int], budget_s: float) -> dict[str, Any]:
    group = await add_users(stack, users, group="C")
    await wait_caught_up(stack, [u.email for u in group])
    emails = {u.email for u in group}
    tag = f"core-{uuid.uuid4().hex[:6]}"
    await asyncio.to_thread(stack.stop_service, "sync-core")
    expected = await _load(stack, group, sizes, tag)
    # The traffic the drain causes, counted from here: the backlog's own requests (the seeding, the
    # ERP's relay of its rows) are left out, as the trigger of a change is in the e2e scenarios.
    before = await _quiet_counts(stack)
    started = time.time()
    await asyncio.to_thread(stack.start_service, "sync-core")
    # CPU is counted from the moment sync-core answers (its imports and migrations left out), and
    # divided by the items created from that moment on.
    meter = stack.cpu_meter()
    meter.start()
    metered_from = time.time()
    progress = CreatedLines(stack, emails)
    while time.time() - started < budget_s:
        await asyncio.sleep(1.0)
        if await progress.poll() >= expected:
            break
    meter.stop()
    after = await request_counts(stack)
    created = sorted((await journal_created(stack, emails)).values())
    sustained = (
        (len(created) - 1) / (created[-1] - created[0]) if len(created) > 1 and created[-1] > created[0] else None
    )
    return {
        "users": users,
        "per_user": sizes,
        "expected": expected,
        "created": len(created),
        "complete": len(created) >= expected,
        "sustained_items_per_s": round(sustained, 1) if sustained else None,
        "wall_items_per_s": round(len(created) / (created[-1] - started), 1) if created else None,
        "drain_s": round((created[-1] - started) if created else 0.0, 2),
        "cpu_s": meter.used,
        "cpu_ms_per_item": meter.per_item_ms(sum(1 for t in created if t >= metered_from)),
        "requests_per_item": per_change(before, after, len(created)),
    }


async def _quiet_counts(stack: Stack) -> dict[str, float]:
    """`request_counts` once they stop moving (the ERP relays the backlog's rows after their POSTs)."""
    last = await request_counts(stack)
    for _ in range(50):
        await asyncio.sleep(0.3)
        now = await request_counts(stack)
        if now == last:
            break
        last = now
    return last
