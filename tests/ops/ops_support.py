"""Helpers of the ops tests: a logged-in console client, silent Outlook changes, journal waits."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx

from tests.support.items import at, event_body, meeting_body
from tests.support.system import OPS_TOKEN, USER_EMAIL, System, eventually

ADMIN = "admin"
# sync-core's demo ADMIN_PASSWORD: the running system keeps the default first admin.
PASSWORD = "admin"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def login(client: httpx.AsyncClient, username: str = ADMIN, password: str = PASSWORD) -> httpx.Response:
    """Log the client in through the login form (nonce cookie + form token)."""
    page = await client.get("/admin/login")
    return await client.post(
        "/admin/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text), "next": "/admin/users"},
    )


@asynccontextmanager
async def console(system: System) -> AsyncIterator[httpx.AsyncClient]:
    """A console client with a session."""
    async with httpx.AsyncClient(base_url=system.sync_url, timeout=30) as client:
        r = await login(client)
        assert r.status_code == 303, r.text
        yield client


@asynccontextmanager
async def notifications_dropped(system: System) -> AsyncIterator[None]:
    """Outlook changes made inside reach nobody: Graph drops their notifications (a lost change)."""
    await system.sim_control("POST", "faults", {"notifications": {"drop_ratio": 1.0}})
    try:
        yield
    finally:
        await system.sim_control("POST", "faults", {"notifications": {"drop_ratio": 0.0}})


_slots = itertools.count()


def slot() -> datetime:
    """A start time no other meeting of these tests uses: the ERP refuses overlapping meetings (R15)."""
    n = next(_slots)
    return at(30 + n // 10, 8 + n % 10)


async def outlook_event(system: System, subject: str, **extra: Any) -> dict[str, Any]:
    return await system.graph.post_json(
        f"/users/{system.graph_user_id}/events", json=event_body(subject, slot(), **extra)
    )


async def erp_meeting(system: System, subject: str, **extra: Any) -> dict[str, Any]:
    return dict(await system.erp_write("POST", "activities", meeting_body(subject, slot(), **extra)))


async def imported(system: System, subject: str) -> dict[str, Any]:
    """The ERP activity an Outlook item became, once it arrived."""

    async def probe() -> list[dict[str, Any]]:
        return [a for a in await system.erp_items("activities") if a["subject"] == subject]

    [activity] = await eventually(probe)
    return activity


async def mirrored(system: System, subject: str) -> dict[str, Any]:
    """The Outlook event an ERP meeting became, once it arrived."""

    async def probe() -> list[dict[str, Any]]:
        return [
            {**e["data"], "id": e["immutableId"]}
            for e in await system.sim_items("events")
            if e["data"].get("subject") == subject
        ]

    [event] = await eventually(probe)
    return event


async def journal_rows(system: System, **params: Any) -> list[dict[str, Any]]:
    return await system.journal(**params)


async def subscriptions_back(system: System) -> None:
    """Wait until REP01 has its three subscriptions again (after a switch went off and on)."""

    async def three() -> bool:
        async with httpx.AsyncClient(base_url=system.sync_url, headers={"Authorization": f"Bearer {OPS_TOKEN}"}) as c:
            subs = (await c.get("/api/v1/ops/subscriptions", params={"user": USER_EMAIL})).json()
        return sorted(s["kind"] for s in subs if s["status"] == "active") == ["contact", "event", "task"]

    await eventually(three, timeout=20)
    await eventually(system.caught_up, timeout=20)
