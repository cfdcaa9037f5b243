"""The walking skeleton: one item each way through every service, one trace per path."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from opentelemetry.sdk.trace import ReadableSpan

from tests.support.system import eventually, running_system


def _route(span: ReadableSpan) -> str:
    attrs = span.attributes or {}
    return str(attrs.get("http.route") or attrs.get("url.full") or attrs.get("http.url") or "")


def _method(span: ReadableSpan) -> str:
    attrs = span.attributes or {}
    return str(attrs.get("http.request.method") or attrs.get("http.method") or "")


def _trace(span: ReadableSpan) -> str:
    return format(span.context.trace_id, "032x")  # type: ignore[union-attr]


async def test_outlook_event_reaches_erp_and_erp_meeting_reaches_outlook_in_one_trace_each(
    common_settings, database_url, tmp_path, span_exporter
) -> None:
    async with running_system(common_settings, database_url, tmp_path) as system:
        # Outlook → ERP: the user creates an event in Outlook.
        span_exporter.clear()
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
        await system.graph.post_json(
            f"/users/{system.graph_user_id}/events",
            json={
                "subject": "Quarterly review with Acme",
                "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "end": {"dateTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "location": {"displayName": "Lisbon office"},
            },
        )

        async def imported() -> list[dict]:
            return [a for a in await system.erp_items("activities") if a["subject"] == "Quarterly review with Acme"]

        [activity] = await eventually(imported)
        assert activity["kind"] == "meeting"
        assert activity["origin"] == "outlook"
        assert activity["representative"] == "REP01"
        assert activity["public"] is True  # R12
        assert activity["location"] == "Lisbon office"
        assert activity["start"].startswith(start.strftime("%Y-%m-%dT%H:%M"))

        async def outlook_path_traced() -> set[str]:
            spans = span_exporter.get_finished_spans()
            creates = [s for s in spans if _method(s) == "POST" and _route(s) == "/api/v1/activities"]
            notified = {_trace(s) for s in spans if _method(s) == "POST" and _route(s) == "/notifications"}
            for create in creates:
                if _trace(create) in notified:
                    names = {s.name for s in spans if _trace(s) == _trace(create)}
                    if "delta read" in names and any(n.endswith(" process") for n in names):
                        return names
            return set()

        # One trace from the Graph notification through the broker and the delta read to the ERP write.
        await eventually(outlook_path_traced, timeout=5)

        # ERP → Outlook: the representative's meeting is created in the ERP.
        span_exporter.clear()
        m_start = start + timedelta(days=1)
        r = await system.erp.post(
            "/api/v1/activities",
            json={
                "kind": "meeting",
                "subject": "Demo for Umbrella",
                "start": m_start.isoformat().replace("+00:00", "Z"),
                "end": (m_start + timedelta(minutes=45)).isoformat().replace("+00:00", "Z"),
                "location": "Porto",
                "representative": "REP01",
                "partner_code": "UMBRELLA",
            },
        )
        assert r.status_code == 201, r.text
        erp_id = r.json()["id"]

        async def mirrored() -> list[dict]:
            return [
                e["data"] for e in await system.sim_items("events") if e["data"].get("subject") == "Demo for Umbrella"
            ]

        [event] = await eventually(mirrored)
        assert "#UMBRELLA#" in (event.get("categories") or [])  # R11
        assert not event.get("attendees"), "no attendee may be written: Exchange would mail them (R31)"

        async def erp_path_traced() -> bool:
            spans = span_exporter.get_finished_spans()
            erp_posts = {_trace(s) for s in spans if _method(s) == "POST" and _route(s) == "/api/v1/activities"}
            graph_posts = [s for s in spans if _method(s) == "POST" and _route(s).endswith("/events")]
            return any(_trace(s) in erp_posts for s in graph_posts)

        # One trace from the ERP write through the outbox and the broker to the Graph write.
        await eventually(erp_path_traced, timeout=5)

        # Neither echo comes back as a second write (R22).
        await asyncio.sleep(1.0)
        assert len(await imported()) == 1
        assert len(await mirrored()) == 1
        assert len([a for a in await system.erp_items("activities") if a["subject"] == "Demo for Umbrella"]) == 1
        assert erp_id
