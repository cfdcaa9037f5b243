"""The visible part of `make run`: one change each way, timed."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.graph.client import GraphClient
from shared.settings import GraphSettings


async def _until(probe: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.02)
    return None


def _graph_time(dt: datetime) -> dict[str, str]:
    return {"dateTime": dt.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


async def run_demo(*, erp_url: str, erp_token: str, graph: GraphSettings, email: str, say: Any) -> bool:
    """Create an event in the simulated mailbox and a meeting in the ERP; report each latency."""
    ok = True
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1, hours=2)
    async with (
        GraphClient(graph) as client,
        httpx.AsyncClient(base_url=erp_url, headers={"Authorization": f"Bearer {erp_token}"}, timeout=10) as erp,
    ):
        user = await client.find_user(email)
        subject = f"Visit to Acme ({stamp})"
        t0 = time.perf_counter()
        await client.post_json(
            f"/users/{user['id']}/events",
            json={
                "subject": subject,
                "start": _graph_time(start),
                "end": _graph_time(start + timedelta(hours=1)),
                "location": {"displayName": "Acme HQ"},
                "categories": ["#ACME#"],
            },
        )

        async def in_erp() -> dict[str, Any] | None:
            r = await erp.get("/api/v1/activities", params={"origin": "outlook", "limit": 1000})
            return next((a for a in r.json()["items"] if a["subject"] == subject), None)

        activity = await _until(in_erp)
        if activity:
            say(
                f"Outlook → ERP: event “{subject}” is ERP activity {activity['chrono']} "
                f"in {(time.perf_counter() - t0) * 1000:.0f} ms"
            )
        else:
            say(f"Outlook → ERP: event “{subject}” did not reach the ERP within 30 s — see var/logs/")
            ok = False

        subject = f"Demo for Umbrella ({stamp})"
        t0 = time.perf_counter()
        r = await erp.post(
            "/api/v1/activities",
            json={
                "kind": "meeting",
                "subject": subject,
                "start": (start + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
                "end": (start + timedelta(days=1, minutes=45)).isoformat().replace("+00:00", "Z"),
                "location": "Porto",
                "representative": "REP01",
                "partner_code": "UMBRELLA",
            },
        )
        r.raise_for_status()

        async def in_outlook() -> dict[str, Any] | None:
            page = await client.get_json(f"/users/{user['id']}/events", params={"$top": "100"})
            return next((e for e in page.get("value", []) if e.get("subject") == subject), None)

        event = await _until(in_outlook)
        if event:
            say(
                f"ERP → Outlook: meeting {r.json()['chrono']} “{subject}” is in the mailbox "
                f"in {(time.perf_counter() - t0) * 1000:.0f} ms"
            )
        else:
            say(f"ERP → Outlook: meeting “{subject}” did not reach the mailbox within 30 s — see var/logs/")
            ok = False
    return ok
