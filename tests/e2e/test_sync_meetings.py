"""Meetings both ways through the running services: field mapping, filters, time zones (R01–R16, R33)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.envelope import Kind, MessageType
from tests.support.items import at, dtz, event_body, ext_value, meeting_body, z
from tests.support.system import System, eventually


async def erp_meetings(system: System, subject: str) -> list[dict]:
    return [a for a in await system.erp_items("activities") if a["subject"] == subject]


async def outlook_events(system: System, subject: str, graph_user_id: str | None = None) -> list[dict]:
    if graph_user_id is None:
        items = await system.sim_items("events")
    else:
        items = await system.sim_control("GET", f"users/{graph_user_id}/events?deleted=false")
    return [e for e in items if e["data"].get("subject") == subject]


async def graph_event(system: System, record: dict) -> dict:
    """The event as Graph renders it (times in UTC), from its simulator record."""
    return await system.graph.get_json(f"{system.user_path()}/events/{record['immutableId']}")


def utc(dtz_value: dict) -> datetime:
    assert dtz_value["timeZone"] == "UTC"
    return datetime.fromisoformat(dtz_value["dateTime"][:19]).replace(tzinfo=UTC)


async def contact(system: System, given: str, surname: str, email: str, partner: str | None = None) -> dict:
    body = {"given_name": given, "surname": surname, "emails": [email], "representatives": ["REP01"]}
    if partner:
        body["partner_code"] = partner
    return dict(await system.erp_write("POST", "contacts", body, expect=201))


async def test_outlook_meeting_fields_reach_the_erp_R01_R08_R11_R12(system: System) -> None:
    jane = await contact(system, "Jane", "Roe", "jane@acme.example", "ACME")
    await contact(system, "Bob", "Poe", "bob@umbrella.example", "UMBRELLA")
    start = at(days=3, hour=9)
    created = await system.graph.post_json(
        f"{system.user_path()}/events",
        json=event_body(
            "Pricing workshop",
            start,
            90,
            location={"displayName": "Acme HQ, room 4"},
            body={
                "contentType": "html",
                "content": "<html><body><p>Agenda: <b>pricing</b> and volumes</p></body></html>",
            },
            categories=["#ACME#", "Red category"],
            attendees=[
                {"emailAddress": {"address": "jane@acme.example", "name": "Jane Roe"}, "type": "required"},
                {"emailAddress": {"address": "bob@umbrella.example", "name": "Bob Poe"}, "type": "required"},
            ],
        ),
    )

    [activity] = await eventually(lambda: erp_meetings(system, "Pricing workshop"))
    assert activity["kind"] == "meeting"
    assert activity["start"] == z(start) and activity["end"] == z(start + timedelta(minutes=90))
    assert activity["location"] == "Acme HQ, room 4"
    assert "Agenda: pricing and volumes" in " ".join((activity["notes"] or "").split())
    assert activity["partner_code"] == "ACME"  # R11: #CODE# category
    assert activity["contact_id"] == jane["id"]  # R08: the first attendee
    assert activity["public"] is True and activity["origin"] == "outlook"  # R12
    assert activity["representative"] == "REP01"
    assert activity["chrono"].startswith("MTG")

    async def stamped() -> dict | None:
        item = await system.sim_item("events", created["id"])
        ok = item and ext_value(item, "ErpId") == f"event:{activity['id']}" and ext_value(item, "Chrono")
        return item if ok else None

    # R21 / R01: the ERP id and the chrono are kept on the Outlook item.
    item = await eventually(stamped)
    assert ext_value(item, "Chrono") == activity["chrono"]


async def test_erp_meeting_fields_reach_outlook_without_attendees_R01_R11_R31(system: System) -> None:
    jane = await contact(system, "Jane", "Roe", "jane@acme.example", "ACME")
    await system.erp_write(
        "POST",
        "representatives",
        {"code": "REP02", "name": "Rui Costa", "email": "rui.costa@contoso.example", "sales_role": True},
        expect=201,
    )
    start = at(days=4, hour=14, minute=30)
    meeting = await system.erp_write(
        "POST",
        "activities",
        meeting_body(
            "Contract renewal",
            start,
            45,
            location="Porto",
            notes="Bring the signed NDA.\nDiscuss volumes.",
            partner_code="ACME",
            contact_id=jane["id"],
            participants=["REP01", "REP02"],
        ),
        expect=201,
    )

    [event] = await eventually(lambda: outlook_events(system, "Contract renewal"))
    data = await graph_event(system, event)
    assert utc(data["start"]) == start and utc(data["end"]) == start + timedelta(minutes=45)
    assert data["location"]["displayName"] == "Porto"
    assert "Bring the signed NDA." in data["body"]["content"]
    assert data["categories"] == ["#ACME#"]  # R11
    assert not data.get("attendees")  # R31: persons to visit are not attendees
    assert ext_value(event, "ErpId") == f"event:{meeting['id']}"  # R21
    assert ext_value(event, "Chrono") == meeting["chrono"]  # R01
    assert [p["email"] for p in json.loads(ext_value(event, "Contacts") or "[]")] == ["jane@acme.example"]
    assert sorted(json.loads(ext_value(event, "Participants") or "[]")) == ["REP01", "REP02"]
    assert await system.sim_control("GET", f"users/{system.graph_user_id}/outbox") == []  # R31: nobody mailed


async def test_erp_meeting_update_reaches_outlook_R01(system: System) -> None:
    start = at(days=5, hour=8)
    meeting = await system.erp_write("POST", "activities", meeting_body("Site visit", start), expect=201)
    [event] = await eventually(lambda: outlook_events(system, "Site visit"))
    await system.erp_write(
        "PUT",
        f"activities/{meeting['id']}",
        {
            "subject": "Site visit (moved)",
            "start": z(start + timedelta(hours=2)),
            "end": z(start + timedelta(hours=3)),
            "location": "Braga",
        },
    )
    [moved] = await eventually(lambda: outlook_events(system, "Site visit (moved)"))
    assert moved["immutableId"] == event["immutableId"]
    assert moved["data"]["location"]["displayName"] == "Braga"
    assert utc((await graph_event(system, moved))["start"]) == start + timedelta(hours=2)


async def test_outlook_meeting_update_reaches_the_erp_R01(system: System) -> None:
    start = at(days=6, hour=11)
    created = await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Kick-off", start))
    [activity] = await eventually(lambda: erp_meetings(system, "Kick-off"))
    await system.graph.patch_json(
        f"{system.user_path()}/events/{created['id']}",
        json={"subject": "Kick-off v2", "location": {"displayName": "Faro"}, "end": dtz(start + timedelta(hours=2))},
    )

    async def updated() -> list[dict]:
        return [a for a in await erp_meetings(system, "Kick-off v2") if a["location"] == "Faro"]

    [after] = await eventually(updated)
    assert after["id"] == activity["id"]
    assert after["end"] == z(start + timedelta(hours=2))


async def test_all_day_multi_day_meeting_keeps_its_days_both_ways_R07(system: System) -> None:
    first = at(days=10, hour=0).date()
    # Outlook → ERP: a three-day all-day event, created in a zone east of UTC.
    await system.graph.post_json(
        f"{system.user_path()}/events",
        json={
            "subject": "Trade fair",
            "isAllDay": True,
            "start": {"dateTime": f"{first}T00:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": f"{first + timedelta(days=3)}T00:00:00", "timeZone": "W. Europe Standard Time"},
        },
    )
    [fair] = await eventually(lambda: erp_meetings(system, "Trade fair"))
    assert fair["all_day"] is True
    assert fair["start"] == f"{first}T00:00:00Z"
    assert fair["end"] == f"{first + timedelta(days=3)}T00:00:00Z"

    # ERP → Outlook: a two-day all-day meeting.
    day = first + timedelta(days=7)
    await system.erp_write(
        "POST",
        "activities",
        {
            "kind": "meeting",
            "subject": "Training",
            "all_day": True,
            "start": f"{day}T00:00:00Z",
            "end": f"{day + timedelta(days=2)}T00:00:00Z",
            "representative": "REP01",
        },
        expect=201,
    )
    [record] = await eventually(lambda: outlook_events(system, "Training"))
    event = await graph_event(system, record)
    assert event["isAllDay"] is True
    assert event["start"]["dateTime"].startswith(f"{day}T00:00:00")
    assert event["end"]["dateTime"].startswith(f"{day + timedelta(days=2)}T00:00:00")


def _next_dst_change(zone: str, after: datetime) -> datetime:
    """The first midnight (local) after `after` whose day has a different UTC offset than the day before."""
    tz = ZoneInfo(zone)
    day = after.astimezone(tz).replace(hour=12, minute=0, second=0, microsecond=0, tzinfo=None)
    offset = day.replace(tzinfo=tz).utcoffset()
    for _ in range(400):
        day += timedelta(days=1)
        if day.replace(tzinfo=tz).utcoffset() != offset:
            return day.replace(hour=0)
    raise AssertionError("no DST change within a year")


@pytest.mark.parametrize(
    ("windows", "iana"),
    [("W. Europe Standard Time", "Europe/Berlin"), ("Pacific Standard Time", "America/Los_Angeles")],
)
async def test_windows_time_zones_convert_exactly_across_dst_R33(system: System, windows: str, iana: str) -> None:
    change = _next_dst_change(iana, datetime.now(UTC))
    cases = {
        "Before DST change": change - timedelta(days=1) + timedelta(hours=10),
        "After DST change": change + timedelta(days=1, hours=10),
    }
    for subject, wall in cases.items():
        await system.graph.post_json(
            f"{system.user_path()}/events",
            json={
                "subject": subject,
                "start": {"dateTime": wall.isoformat(), "timeZone": windows},
                "end": {"dateTime": (wall + timedelta(hours=1)).isoformat(), "timeZone": windows},
            },
        )
    for subject, wall in cases.items():
        [activity] = await eventually(lambda subject=subject: erp_meetings(system, subject))
        expected = wall.replace(tzinfo=ZoneInfo(iana)).astimezone(UTC)
        assert activity["start"] == z(expected), subject
        assert activity["end"] == z(expected + timedelta(hours=1)), subject


async def test_private_event_never_reaches_erp_R05(system: System) -> None:
    created = await system.graph.post_json(
        f"{system.user_path()}/events", json=event_body("Doctor", at(days=2, hour=16), sensitivity="private")
    )
    await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Public one", at(days=2, hour=18)))
    await eventually(lambda: erp_meetings(system, "Public one"))
    [row] = await eventually(lambda: system.journal(rule="R05"))
    assert row["outcome"] == "skipped" and row["graph_id"] == created["id"]
    assert await erp_meetings(system, "Doctor") == []


async def test_recurring_event_is_skipped_and_journaled_R06(system: System) -> None:
    start = at(days=2, hour=7)
    await system.graph.post_json(
        f"{system.user_path()}/events",
        json=event_body(
            "Daily stand-up",
            start,
            15,
            recurrence={
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "numbered", "startDate": str(start.date()), "numberOfOccurrences": 3},
            },
        ),
    )
    await system.graph.post_json(f"{system.user_path()}/events", json=event_body("One-off", at(days=2, hour=12)))
    await eventually(lambda: erp_meetings(system, "One-off"))
    rows = await eventually(lambda: system.journal(rule="R06"))
    assert all(r["outcome"] == "skipped" and "recurring" in r["reason"] for r in rows)
    assert await erp_meetings(system, "Daily stand-up") == []


async def test_overlapping_meeting_refusal_is_journaled_and_the_sync_goes_on_R15(system: System) -> None:
    start = at(days=3, hour=10)
    await system.erp_write("POST", "activities", meeting_body("Board meeting", start), expect=201)
    await eventually(lambda: outlook_events(system, "Board meeting"))
    clash = await system.graph.post_json(
        f"{system.user_path()}/events", json=event_body("Clashing call", start + timedelta(minutes=30))
    )
    await system.graph.post_json(
        f"{system.user_path()}/events", json=event_body("Later slot", start + timedelta(hours=3))
    )

    await eventually(lambda: erp_meetings(system, "Later slot"))  # the rest of the sync goes on
    [row] = await eventually(lambda: system.journal(rule="R15"))
    assert row["outcome"] == "failed" and row["graph_id"] == clash["id"]
    assert "overlap" in row["reason"] and row["trace_id"]  # R25: the ERP's error and a trace code
    assert await erp_meetings(system, "Clashing call") == []


async def test_unknown_company_code_on_an_outlook_meeting_is_a_journal_error_R11(system: System) -> None:
    created = await system.graph.post_json(
        f"{system.user_path()}/events", json=event_body("Mystery client", at(days=2), categories=["#NOPE#"])
    )
    [row] = await eventually(lambda: system.journal(rule="R11", outcome="failed"))
    assert row["graph_id"] == created["id"] and "NOPE" in row["reason"]
    assert await erp_meetings(system, "Mystery client") == []


async def test_only_the_users_own_erp_activities_reach_the_mailbox_R13(system: System) -> None:
    await system.erp_write(
        "POST",
        "representatives",
        {"code": "REP02", "name": "Rui Costa", "email": "rui.costa@contoso.example", "sales_role": False},
        expect=201,
    )
    # R13: a representative without a sales role cannot be enabled.
    r = await system.erp.put("/api/v1/representatives/REP02", json={"sync_enabled": True})
    assert r.status_code == 422, r.text
    await system.erp_write("POST", "activities", meeting_body("Rui's meeting", at(days=3), representative="REP02"))
    await system.erp_write("POST", "activities", meeting_body("Ana's meeting", at(days=4)))
    await eventually(lambda: outlook_events(system, "Ana's meeting"))
    assert await outlook_events(system, "Rui's meeting") == []


@pytest.mark.representative(activities_erp_to_outlook=False)
async def test_activities_erp_to_outlook_switch_off_keeps_erp_meetings_out_R16(system: System) -> None:
    meeting = await system.erp_write("POST", "activities", meeting_body("ERP only", at(days=3)), expect=201)
    [row] = await eventually(lambda: system.journal(rule="R16", direction="erp_to_outlook"))
    assert row["erp_id"] == str(meeting["id"]) and row["outcome"] == "skipped"
    # The other direction still runs.
    await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Outlook one", at(days=4)))
    await eventually(lambda: erp_meetings(system, "Outlook one"))
    assert await outlook_events(system, "ERP only") == []


@pytest.mark.representative(activities_outlook_to_erp=False)
async def test_activities_outlook_to_erp_switch_off_keeps_outlook_events_out_R16(system: System) -> None:
    created = await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Outlook only", at(days=3)))
    # graph-webhook does not even subscribe; a resync (e.g. asked by an operator) still skips the event.
    await system.publish(MessageType.GRAPH_RESYNC, kind=Kind.EVENT, reason="manual")
    [row] = await eventually(lambda: system.journal(rule="R16", direction="outlook_to_erp"))
    assert row["graph_id"] == created["id"] and row["outcome"] == "skipped"
    await system.erp_write("POST", "activities", meeting_body("ERP one", at(days=4)), expect=201)
    await eventually(lambda: outlook_events(system, "ERP one"))
    assert await erp_meetings(system, "Outlook only") == []


@pytest.mark.representative(sync_meetings=False)
async def test_meetings_switch_off_keeps_meetings_out_while_tasks_flow_R16(system: System) -> None:
    await system.graph.post_json(f"{system.user_path()}/events", json=event_body("No meetings", at(days=3)))
    await system.graph.post_json(await system.tasks_path(), json={"title": "Tasks still flow"})
    await system.publish(MessageType.GRAPH_RESYNC, kind=Kind.EVENT, reason="manual")
    await eventually(lambda: system.journal(rule="R16", kind="event"))

    async def task() -> list[dict]:
        return [a for a in await system.erp_items("activities") if a["subject"] == "Tasks still flow"]

    await eventually(task)
    assert await erp_meetings(system, "No meetings") == []


async def test_erp_edit_of_an_outlook_meeting_with_attendees_mails_nobody_R31(system: System) -> None:
    created = await system.graph.post_json(
        f"{system.user_path()}/events",
        json=event_body(
            "Team lunch",
            at(days=5, hour=12),
            attendees=[{"emailAddress": {"address": "guest@acme.example", "name": "Guest"}, "type": "required"}],
        ),
    )
    [activity] = await eventually(lambda: erp_meetings(system, "Team lunch"))
    outbox = await system.sim_control("GET", f"users/{system.graph_user_id}/outbox")  # the user's own invitation

    # A partner code only touches categories: written quietly.
    await system.erp_write("PUT", f"activities/{activity['id']}", {"partner_code": "ACME"})

    async def categorised() -> bool:
        item = await system.sim_item("events", created["id"])
        return item is not None and "#ACME#" in (item["data"].get("categories") or [])

    await eventually(categorised)
    # A new time would mail the attendees an update: skipped and journaled instead.
    await system.erp_write(
        "PUT",
        f"activities/{activity['id']}",
        {"start": z(at(days=5, hour=14)), "end": z(at(days=5, hour=15))},
    )
    rows = await eventually(lambda: system.journal(rule="R31"))
    assert all(r["outcome"] == "skipped" and r["erp_id"] == str(activity["id"]) for r in rows)
    assert await system.sim_control("GET", f"users/{system.graph_user_id}/outbox") == outbox
    graph = await system.graph.get_json(f"{system.user_path()}/events/{created['id']}")
    assert utc(graph["start"]) == at(days=5, hour=12)
    # Nor is the ERP's edit undone by Outlook's older time.
    r = await system.erp.get(f"/api/v1/activities/{activity['id']}")
    assert r.json()["start"] == z(at(days=5, hour=14))


async def test_outlook_events_outside_the_sync_window_stay_out_R34(system: System) -> None:
    await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Long ago", at(days=-60)))
    await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Far ahead", at(days=400)))
    await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Next week", at(days=7)))
    await eventually(lambda: erp_meetings(system, "Next week"))
    assert await erp_meetings(system, "Long ago") == [] and await erp_meetings(system, "Far ahead") == []


async def test_meeting_moved_out_of_the_window_is_unlinked_not_deleted_R34_R32(system: System) -> None:
    created = await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Postponed", at(days=7)))
    [activity] = await eventually(lambda: erp_meetings(system, "Postponed"))
    # Delta reports the event as removed from the window; it still exists, and nothing is deleted.
    await system.graph.patch_json(
        f"{system.user_path()}/events/{created['id']}",
        json={"start": dtz(at(days=500)), "end": dtz(at(days=500, hour=11))},
    )
    [row] = await eventually(lambda: system.journal(outcome="unlinked"))
    assert row["rule"] == "R34" and row["erp_id"] == str(activity["id"])
    r = await system.erp.get(f"/api/v1/activities/{activity['id']}")
    assert r.json()["deleted"] is False and r.json()["start"] == activity["start"]
