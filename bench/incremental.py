"""Incremental cost (R30): the time to sync one change in a mailbox of `large` items over one of `small`.

Two users, two calendars of filler events. Syncing 50,000 events through the product first would
take longer than the whole suite may run, so the filler is put in place as a finished initial sync
would leave it, on every side: the events in the simulated mailbox (no notifications); their ERP
meetings and sync-core's links written straight into the stack's own databases; sync-core's delta
cursor for the calendar taken from a real delta round to the end of the mailbox. Only then is the
user switched on. Every measured change then goes through the running product, one at a time,
alternating between the two mailboxes: an event created in Outlook, then the same event renamed
through Graph. Each is timed from the simulator's notification POST to the ERP row
(`created_at`, `updated_at`); the figure is the ratio of the medians.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import create_engine, insert

from bench.seed import (
    User,
    add_mailbox,
    add_representative,
    event_body,
    iso,
    parse_ts,
    rep_code,
    rep_email,
    seed_items,
    wait_caught_up,
)
from bench.stack import Stack
from bench.stats import median, summary
from erp_connector.models import Activity
from shared.db import sync_url
from shared.envelope import Kind
from shared.graph.client import GraphClient
from sync_core.adapters.mailbox import Mailbox
from sync_core.models import DeltaCursor, Link

SLOT = timedelta(minutes=10)
FILLER_MINUTES = 5


def _first_day() -> datetime:
    # Inside the sync window (30 days back by default, R34) with room for 50,000 10-minute slots.
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=25)


async def _delta_link(stack: Stack, user: User) -> tuple[str, int]:
    """Read the calendar's delta to its end, as sync-core's first round would; its deltaLink and item count."""
    async with GraphClient(stack.graph_settings()) as graph:
        mailbox = Mailbox(graph, user.email, user.graph_id)
        url, params = await mailbox.initial_delta(Kind.EVENT, now=datetime.now(UTC), days_back=30, days_ahead=365)
        seen = 0
        async for items, link in graph.delta(url, params=params, max_page_size=1000, mailbox=user.email):
            seen += len(items)
            if link:
                return link, seen
    raise RuntimeError("delta ended without a deltaLink")


def _write_filler(stack: Stack, user: User, index: int, records: list[dict[str, Any]], delta_link: str) -> None:
    """ERP meetings and sync-core links for the filler events, and the calendar's delta cursor."""
    now = datetime.now(UTC)
    base_id = 10_000_000 * (index + 1)
    activities = []
    links = []
    for n, rec in enumerate(records):
        erp_id = base_id + n
        start = datetime.fromisoformat(rec["start"]).replace(tzinfo=UTC)
        activities.append(
            {
                "id": erp_id,
                "kind": "meeting",
                "chrono": f"MTGF{index}{n:07d}",
                "subject": rec["data"].get("subject", ""),
                "start": start,
                "end": start + timedelta(minutes=FILLER_MINUTES),
                "all_day": False,
                "location": "Porto",
                "done": False,
                "representative": user.code,
                "participants": [],
                "public": True,
                "origin": "outlook",
                "version": 1,
                "created_at": now,
                "updated_at": now,
                "deleted": False,
            }
        )
        links.append(
            {
                "user": user.email,
                "kind": "event",
                "collection": "event",
                "graph_id": rec["immutableId"],
                "erp_id": str(erp_id),
                "fingerprint": "bench-filler",
                "graph_change_key": rec["changeKey"],
                "erp_version": 1,
                "synced_at": now,
            }
        )
    erp = create_engine(sync_url(stack.db_url("erp")))
    with erp.begin() as conn:
        conn.execute(insert(Activity.__table__), activities)  # type: ignore[attr-defined]
    erp.dispose()
    sync = create_engine(sync_url(stack.db_url("sync")))
    with sync.begin() as conn:
        conn.execute(insert(Link.__table__), links)  # type: ignore[attr-defined]
        conn.execute(
            insert(DeltaCursor.__table__),  # type: ignore[attr-defined]
            [{"user": user.email, "collection": "event", "delta_link": delta_link, "updated_at": now}],
        )
    sync.dispose()


async def _prepare(stack: Stack, sizes: list[int]) -> list[User]:
    users: list[User] = []
    async with stack.sim() as sim, stack.erp() as erp:
        for i, size in enumerate(sizes):
            code, email = rep_code(i, "R"), rep_email(i, "R")
            box = await add_mailbox(sim, email)
            user = User(code, email, str(box["id"]), str(box["defaultCalendarId"]), str(box["defaultTodoListId"]))
            # Known to the ERP but switched off: nothing syncs while the filler is put in place.
            await add_representative(erp, code, email, sync_enabled=False)
            first = _first_day()
            bodies = [event_body(f"filler {n}", first + SLOT * n, FILLER_MINUTES) for n in range(size)]
            records = await seed_items(stack, user, "events", bodies)
            link, seen = await _delta_link(stack, user)
            if seen != size:
                raise RuntimeError(f"delta of {user.email} returned {seen} events, not {size}")
            await asyncio.to_thread(_write_filler, stack, user, i, records, link)
            users.append(user)
        for user in users:
            (await erp.put(f"/representatives/{user.code}", json={"sync_enabled": True})).raise_for_status()
    await wait_caught_up(stack, [u.email for u in users], timeout=120)
    return users


async def _until_in_erp(
    erp: httpx.AsyncClient, user: User, subject: str, since: datetime, timeout: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # By `updated_since` alone: with `representative` too, the ERP plans the query on its
        # (representative, kind) index and scans all of the user's meetings — the poll itself would then
        # cost in proportion to the mailbox and skew what is measured.
        r = await erp.get("/activities", params={"updated_since": iso(since - timedelta(seconds=1)), "limit": 100})
        r.raise_for_status()
        for row in r.json()["items"]:
            if row["subject"] == subject and row["representative"] == user.code:
                return dict(row)
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{subject!r} did not reach the ERP within {timeout:.0f}s")


async def _notified_after(stack: Stack, changes: list[tuple[str, float]]) -> list[float | None]:
    """For each (item id, time of the change): when the simulator POSTed the first notification about it."""
    async with stack.sim(timeout=120) as sim:
        history = (await sim.get("/_sim/notifications")).json()
    sent: dict[str, list[float]] = {}
    for attempt in history:
        for n in attempt.get("value") or []:
            rid = (n.get("resourceData") or {}).get("id")
            if rid:
                sent.setdefault(rid, []).append(float(attempt["sent_at"]))
    out: list[float | None] = []
    for rid, at in changes:
        later = [t for t in sent.get(rid, []) if t >= at - 0.001]
        out.append(min(later) if later else None)
    return out


async def run(stack: Stack, *, small: int, large: int, probes: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    users = await _prepare(stack, [small, large])
    prepared_s = time.perf_counter() - t0
    sizes = {users[0].code: small, users[1].code: large}
    tag = uuid.uuid4().hex[:6]
    # (user code, kind, item id, time of the change, ERP time of the result)
    changes: list[tuple[str, str, str, float, float]] = []
    cpu: dict[str, dict[str, float]] = {u.code: {} for u in users}
    async with stack.erp() as erp, GraphClient(stack.graph_settings()) as graph:
        for i in range(probes):
            for user in users:
                start = _first_day() + SLOT * (sizes[user.code] + i)
                meter = stack.cpu_meter()
                meter.start()
                subject = f"probe {tag} {user.code} {i}"
                made_at = time.time()
                records = await seed_items(
                    stack, user, "events", [event_body(subject, start, FILLER_MINUTES)], notify=True
                )
                item_id = str(records[0]["immutableId"])
                row = await _until_in_erp(erp, user, subject, datetime.fromtimestamp(made_at, UTC))
                changes.append((user.code, "create", item_id, made_at, parse_ts(row["created_at"])))
                renamed = f"{subject} renamed"
                made_at = time.time()
                await graph.patch_json(f"/users/{user.graph_id}/events/{item_id}", json={"subject": renamed})
                row = await _until_in_erp(erp, user, renamed, datetime.fromtimestamp(made_at, UTC))
                changes.append((user.code, "update", item_id, made_at, parse_ts(row["updated_at"])))
                for name, used in meter.stop().items():
                    cpu[user.code][name] = cpu[user.code].get(name, 0.0) + used
    notified = await _notified_after(stack, [(c[2], c[3]) for c in changes])
    by_user: dict[str, list[float]] = {u.code: [] for u in users}
    by_kind: dict[str, dict[str, list[float]]] = {u.code: {"create": [], "update": []} for u in users}
    unnotified = 0
    for (code, kind, _, _, done_at), sent in zip(changes, notified, strict=True):
        if sent is None:
            unnotified += 1
            continue
        ms = max(0.0, (done_at - sent) * 1000)
        by_user[code].append(ms)
        by_kind[code][kind].append(ms)
    small_code, large_code = users[0].code, users[1].code
    m_small, m_large = median(by_user[small_code]), median(by_user[large_code])
    return {
        "small_items": small,
        "large_items": large,
        "probes_per_mailbox": probes * 2,
        "prepared_in_s": round(prepared_s, 1),
        "not_notified": unnotified,
        "small_ms": summary(by_user[small_code]),
        "large_ms": summary(by_user[large_code]),
        "small_by_kind_p50_ms": {k: median(v) for k, v in by_kind[small_code].items()},
        "large_by_kind_p50_ms": {k: median(v) for k, v in by_kind[large_code].items()},
        "ratio": round(m_large / m_small, 2) if m_small and m_large else None,
        "cpu_ms_per_change": {
            code: {k: round(v / (probes * 2) * 1000, 2) for k, v in used.items()} for code, used in cpu.items()
        },
    }
