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
from datetime import timedelta
from typing import Any

from bench.e2e import Slots
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


async def journal_created(stack: Stack, users: set[str]) -> list[float]:
    """Times of the journal's `created` lines of `users` (newest first pages of 1,000)."""
    times: list[float] = []
    async with stack.ops() as ops:
        offset = 0
        while True:
            r = await ops.get("/journal", params={"outcome": "created", "limit": 1000, "offset": offset})
            r.raise_for_status()
            page = r.json()
            times.extend(parse_ts(j["at"]) for j in page if j["user"] in users)
            if len(page) < 1000:
                return sorted(times)
            offset += len(page)


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
    started = time.time()
    await asyncio.to_thread(stack.start_service, "sync-core")
    # CPU is counted from the moment sync-core answers (its imports and migrations left out), and
    # divided by the items created from that moment on.
    meter = stack.cpu_meter()
    meter.start()
    metered_from = time.time()
    created: list[float] = []
    while time.time() - started < budget_s:
        await asyncio.sleep(1.0)
        created = await journal_created(stack, emails)
        if len(created) >= expected:
            break
    meter.stop()
    created = await journal_created(stack, emails)
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
    }
