"""Operations through the running services: last sync times (R23), force sync (R24), the journal
with trace ids (R25), reassignment moving the mirror (R32)."""

from __future__ import annotations

from datetime import datetime

from shared.envelope import Kind, MessageType
from tests.support.items import at, event_body, meeting_body
from tests.support.system import System, eventually

RUI = {"code": "REP02", "name": "Rui Costa", "email": "rui.costa@contoso.example"}


async def events_of(system: System, graph_user_id: str, subject: str) -> list[dict]:
    items = await system.sim_control("GET", f"users/{graph_user_id}/events?deleted=false")
    return [e for e in items if e["data"].get("subject") == subject]


def when(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_last_sync_times_are_kept_per_direction_R23(system: System) -> None:
    await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Stamp O2E", at(days=2)))
    await system.erp_write("POST", "activities", meeting_body("Stamp E2O", at(days=3)), expect=201)

    async def both_stamped() -> dict | None:
        state = await system.user_state()
        ok = state and state["last_sync_outlook_to_erp"] and state["last_sync_erp_to_outlook"]
        return state if ok else None

    first = await eventually(both_stamped)
    assert first["healthy"] is True
    version = (await system.erp_write("GET", "representatives/REP01"))["version"]

    async def kept_in_the_erp() -> dict | None:
        rep = await system.erp_write("GET", "representatives/REP01")
        return rep if rep["last_sync_outlook_to_erp"] and rep["last_sync_erp_to_outlook"] else None

    # The ERP's representative shows them too, without a new version (an admin's open form stays valid).
    rep = await eventually(kept_in_the_erp, timeout=40)
    assert rep["version"] == version

    await system.erp_write("POST", "activities", meeting_body("Stamp E2O again", at(days=4)), expect=201)

    async def advanced() -> bool:
        state = await system.user_state()
        return bool(state) and when(state["last_sync_erp_to_outlook"]) > when(first["last_sync_erp_to_outlook"])

    await eventually(advanced)


async def test_every_handled_item_leaves_a_journal_row_with_a_trace_id_R25(system: System) -> None:
    created = await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Journaled", at(days=2)))
    meeting = await system.erp_write("POST", "activities", meeting_body("Journaled too", at(days=3)), expect=201)

    async def rows() -> list[dict]:
        found = await system.journal(outcome="created")
        return found if len(found) == 2 else []

    by_direction = {r["direction"]: r for r in await eventually(rows)}
    o2e, e2o = by_direction["outlook_to_erp"], by_direction["erp_to_outlook"]
    assert o2e["graph_id"] == created["id"] and o2e["erp_id"] and o2e["kind"] == "event"
    assert e2o["erp_id"] == str(meeting["id"]) and e2o["graph_id"]
    for row in (o2e, e2o):
        assert row["user"] == "ana.silva@contoso.example"
        assert len(row["trace_id"] or "") == 32 and int(row["trace_id"], 16)  # finds the server-side trace
    assert o2e["trace_id"] != e2o["trace_id"]


async def test_force_sync_resends_every_item_without_duplicates_R24(system: System) -> None:
    meeting = await system.erp_write("POST", "activities", meeting_body("Forced meeting", at(days=3)), expect=201)
    await system.erp_write(
        "POST", "activities", {"kind": "task", "subject": "Forced task", "representative": "REP01"}, expect=201
    )
    await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Forced from Outlook", at(days=4)))

    async def synced() -> bool:
        events = await system.sim_items("events")
        return (
            len(events) == 2
            and len(await system.sim_items("tasks")) == 1
            and (len(await system.erp_items("activities")) == 3)
        )

    await eventually(synced)
    # A lost link must not turn the re-send into a duplicate either (R21).
    await system.sync_db("DELETE FROM sync_link WHERE erp_id = :erp_id", erp_id=str(meeting["id"]))

    await system.publish(MessageType.SYNC_FORCE, direction="erp_to_outlook", requested_by="ops@contoso.example")
    await system.publish(
        MessageType.SYNC_FORCE,
        kind=Kind.EVENT,
        direction="outlook_to_erp",
        since=at(days=-1).isoformat(),
        requested_by="ops@contoso.example",
    )

    async def forced() -> list[dict]:
        # ERP → Outlook for every collection runs as one force per collection, in its order (ADR 0002).
        found = await system.journal(outcome="forced", rule="R24")
        return found if len(found) == 4 else []

    rows = await eventually(forced)
    assert sorted((r["direction"], r["kind"]) for r in rows) == [
        ("erp_to_outlook", "contact"),
        ("erp_to_outlook", "event"),
        ("erp_to_outlook", "task"),
        ("outlook_to_erp", "event"),
    ]
    assert all(r["actor"] == "ops@contoso.example" for r in rows)
    assert len(await system.sim_items("events")) == 2
    assert len(await system.sim_items("tasks")) == 1
    assert sorted(a["subject"] for a in await system.erp_items("activities")) == [
        "Forced from Outlook",
        "Forced meeting",
        "Forced task",
    ]


async def test_reassigning_an_erp_meeting_moves_its_mirror_to_the_new_owners_mailbox_R32(system: System) -> None:
    rui = await system.add_user({**RUI, "sales_role": True, "sync_enabled": True})
    meeting = await system.erp_write("POST", "activities", meeting_body("Handover", at(days=3)), expect=201)
    [old] = await eventually(lambda: events_of(system, system.graph_user_id, "Handover"))

    await system.erp_write("PUT", f"activities/{meeting['id']}", {"representative": "REP02"})

    [new] = await eventually(lambda: events_of(system, rui, "Handover"))
    await eventually(lambda: _gone(system, old["immutableId"]))
    r = await system.erp.get(f"/api/v1/activities/{meeting['id']}")
    assert r.json()["deleted"] is False and r.json()["representative"] == "REP02"  # nothing deleted in the ERP
    assert new["immutableId"] != old["immutableId"]
    [row] = await eventually(lambda: system.journal(rule="R32", user="ana.silva@contoso.example"))
    assert row["erp_id"] == str(meeting["id"])

    # Rui's edits now reach the ERP; Ana's mailbox stays out of it.
    await system.graph.patch_json(
        f"/users/{rui}/events/{new['immutableId']}", json={"location": {"displayName": "Rui's office"}}
    )

    async def edited() -> bool:
        r = await system.erp.get(f"/api/v1/activities/{meeting['id']}")
        return bool(r.json()["location"] == "Rui's office")

    await eventually(edited)
    assert await events_of(system, system.graph_user_id, "Handover") == []


async def _gone(system: System, immutable_id: str) -> bool:
    item = await system.sim_item("events", immutable_id)
    return item is None or item["deleted"]
