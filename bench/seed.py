"""Benchmark data: representatives with their mailboxes, partners, Outlook items and ERP activities."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.stack import Stack

PARTNERS: list[dict[str, Any]] = [
    {"code": "ACME", "name": "Acme Corporation", "type": "customer", "domains": ["acme.example"]},
    {"code": "GLOBEX", "name": "Globex Ltd", "type": "customer", "domains": ["globex.example"]},
    {"code": "UMBRELLA", "name": "Umbrella Trading", "type": "prospect", "domains": ["umbrella.example"]},
    {"code": "VANDELAY", "name": "Vandelay Industries", "type": "supplier", "domains": ["vandelay.example"]},
]
DOMAINS = ["acme.example", "globex.example", "umbrella.example", "vandelay.example", "elsewhere.example"]
SWITCHES_ON = {
    "sales_role": True,
    "active": True,
    "sync_enabled": True,
    "contacts_outlook_to_erp": True,
    "activities_outlook_to_erp": True,
    "activities_erp_to_outlook": True,
    "sync_meetings": True,
    "sync_tasks": True,
    "sync_calls": True,
    "sync_contacts": True,
    "contacts_two_way": False,
}


@dataclass
class User:
    """A representative and their simulated mailbox."""

    code: str
    email: str
    graph_id: str
    calendar_id: str
    todo_list_id: str


def rep_code(i: int, group: str = "B") -> str:
    return f"{group}{i:04d}"


def rep_email(i: int, group: str = "B") -> str:
    return f"{group.lower()}{i:04d}@contoso.example"


def day_start(days_from_now: int = 1) -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=days_from_now)


def graph_time(dt: datetime) -> dict[str, str]:
    return {"dateTime": dt.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def event_body(subject: str, start: datetime, minutes: int = 30, *, partner: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": subject,
        "start": graph_time(start),
        "end": graph_time(start + timedelta(minutes=minutes)),
        "location": {"displayName": "Porto"},
        "body": {"contentType": "text", "content": "benchmark"},
    }
    if partner:
        body["categories"] = [f"#{partner}#"]
    return body


def contact_body(tag: str, n: int) -> dict[str, Any]:
    domain = DOMAINS[n % len(DOMAINS)]
    return {
        "givenName": f"Given{n}",
        "surname": f"{tag}{n}",
        "emailAddresses": [{"address": f"{tag.lower()}{n}@{domain}", "name": f"Given{n} {tag}{n}"}],
        "businessPhones": ["+351 22 000 0000"],
        "jobTitle": "Buyer",
    }


def task_body(subject: str, due: datetime) -> dict[str, Any]:
    return {"title": subject, "dueDateTime": graph_time(due), "importance": "normal"}


def erp_meeting(code: str, subject: str, start: datetime, minutes: int = 30) -> dict[str, Any]:
    return {
        "kind": "meeting",
        "subject": subject,
        "start": iso(start),
        "end": iso(start + timedelta(minutes=minutes)),
        "location": "Lisboa",
        "representative": code,
        "partner_code": "ACME",
    }


def erp_todo(code: str, kind: str, subject: str, when: datetime) -> dict[str, Any]:
    return {"kind": kind, "subject": subject, "start": iso(when), "due": iso(when), "representative": code}


async def add_partners(stack: Stack) -> None:
    async with stack.erp() as erp:
        for partner in PARTNERS:
            r = await erp.post("/partners", json=partner)
            if r.status_code not in (200, 201, 409):
                r.raise_for_status()


async def add_mailbox(sim: httpx.AsyncClient, email: str) -> dict[str, Any]:
    r = await sim.post("/_sim/users", json={"userPrincipalName": email, "mail": email, "displayName": email})
    r.raise_for_status()
    return dict(r.json())


async def add_representative(erp: httpx.AsyncClient, code: str, email: str, **overrides: Any) -> None:
    r = await erp.post(
        "/representatives", json={"code": code, "name": code, "email": email, **SWITCHES_ON, **overrides}
    )
    r.raise_for_status()


async def add_users(stack: Stack, count: int, group: str = "B", *, representatives: bool = True) -> list[User]:
    """`count` mailboxes in the simulator and, unless told otherwise, their ERP representatives."""
    users: list[User] = []
    async with stack.sim() as sim, stack.erp() as erp:
        for i in range(count):
            code, email = rep_code(i, group), rep_email(i, group)
            box = await add_mailbox(sim, email)
            users.append(
                User(code, email, str(box["id"]), str(box["defaultCalendarId"]), str(box["defaultTodoListId"]))
            )
            if representatives:
                await add_representative(erp, code, email)
    return users


async def seed_items(
    stack: Stack, user: User, kind: str, items: list[dict[str, Any]], *, notify: bool = False, chunk: int = 1000
) -> list[dict[str, Any]]:
    """Create items in a mailbox as the user would in Outlook (`kind`: events, contacts, tasks)."""
    created: list[dict[str, Any]] = []
    async with stack.sim(timeout=300) as sim:
        for start in range(0, len(items), chunk):
            r = await sim.post(
                f"/_sim/users/{user.graph_id}/{kind}", json={"items": items[start : start + chunk], "notify": notify}
            )
            r.raise_for_status()
            created.extend(r.json())
    return created


async def user_states(stack: Stack) -> dict[str, dict[str, Any]]:
    async with stack.ops() as ops:
        r = await ops.get("/users/state")
        r.raise_for_status()
        return {u["user"]: u for u in r.json()}


async def wait_caught_up(stack: Stack, emails: list[str], timeout: float = 120.0) -> float:
    """Wait until sync-core holds a delta cursor for every collection of every user; returns seconds waited."""
    start = time.monotonic()
    wanted = {e.lower() for e in emails}
    while True:
        states = await user_states(stack)
        done = {u for u, s in states.items() if {"event", "contact", "todo"} <= set(s["delta_collections"])}
        if wanted <= done:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{len(wanted - done)} of {len(wanted)} users not caught up after {timeout:.0f}s")
        await asyncio.sleep(0.2)


async def wait_subscriptions(stack: Stack, count: int, timeout: float = 120.0) -> list[dict[str, Any]]:
    start = time.monotonic()
    async with stack.sim() as sim:
        while True:
            subs = list((await sim.get("/_sim/subscriptions")).json())
            if len(subs) >= count:
                return subs
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{len(subs)} of {count} subscriptions after {timeout:.0f}s")
            await asyncio.sleep(0.2)


async def erp_activities(stack: Stack, **params: Any) -> list[dict[str, Any]]:
    """Every activity matching `params` (paged by 1,000)."""
    out: list[dict[str, Any]] = []
    async with stack.erp(timeout=120) as erp:
        offset = 0
        while True:
            r = await erp.get("/activities", params={**params, "limit": 1000, "offset": offset})
            r.raise_for_status()
            page = r.json()
            out.extend(page["items"])
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return out


async def erp_total(erp: httpx.AsyncClient, collection: str, **params: Any) -> int:
    r = await erp.get(f"/{collection}", params={**params, "limit": 1})
    r.raise_for_status()
    return int(r.json()["total"])


async def sim_items(stack: Stack, user: User, kind: str, subject_prefix: str | None = None) -> list[dict[str, Any]]:
    params = {"deleted": "false"} | ({"subject_prefix": subject_prefix} if subject_prefix else {})
    async with stack.sim(timeout=300) as sim:
        r = await sim.get(f"/_sim/users/{user.graph_id}/{kind}", params=params)
        r.raise_for_status()
        return list(r.json())


async def notification_times(stack: Stack) -> dict[str, float]:
    """Per changed item id, when the simulator first POSTed a notification about it (epoch seconds)."""
    async with stack.sim(timeout=120) as sim:
        history = (await sim.get("/_sim/notifications")).json()
    first: dict[str, float] = {}
    for attempt in history:
        for n in attempt.get("value") or []:
            rid = (n.get("resourceData") or {}).get("id")
            if rid and (rid not in first or attempt["sent_at"] < first[rid]):
                first[rid] = float(attempt["sent_at"])
    return first


def parse_ts(value: str) -> float:
    """Epoch seconds of an ISO 8601 time (`Z` or offset; Graph's 7 fractional digits allowed)."""
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        tail = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{tail}"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
