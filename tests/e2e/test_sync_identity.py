"""Stable identity: folder moves keep the link, lost links are re-found, sync writes do not echo (R21, R22)."""

from __future__ import annotations

import itertools

import pytest

from tests.support.items import at, event_body, ext_value, meeting_body
from tests.support.system import System, eventually


async def erp_activities(system: System, subject: str | None = None) -> list[dict]:
    items = await system.erp_items("activities")
    return [a for a in items if subject is None or a["subject"] == subject]


async def items_where(system: System, kind: str, field: str, value: str) -> list[dict]:
    return [i for i in await system.sim_items(kind) if i["data"].get(field) == value]


async def erp_record(system: System, collection: str, erp_id: int | str) -> dict:
    r = await system.erp.get(f"/api/v1/{collection}/{erp_id}")
    r.raise_for_status()
    return dict(r.json())


_barriers = itertools.count()


async def settled(system: System, subject: str) -> None:
    """Everything queued for the user's calendar before this call has been handled.

    Notifications go out first (the simulator's flush); then a barrier meeting made in the ERP,
    which queues behind them on the same (user, collection) queue, must reach Outlook.
    """
    await system.sim_control("POST", "notifications/flush")
    await system.erp_write(
        "POST", "activities", meeting_body(subject, at(days=20 + next(_barriers), hour=7)), expect=201
    )
    await eventually(lambda: items_where(system, "events", "subject", subject))


async def test_folder_move_keeps_the_link_R21(system: System) -> None:
    created = await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Moving day", at(days=3)))
    [activity] = await eventually(lambda: erp_activities(system, "Moving day"))
    archive = await system.graph.post_json(f"{system.user_path()}/calendars", json={"name": "Archive"})
    moved = await system.graph.post_json(
        f"{system.user_path()}/events/{created['id']}/move", json={"destinationId": archive["id"]}
    )
    assert moved["id"] == created["id"]  # immutable id
    await settled(system, "Barrier after the move")
    assert (await erp_record(system, "activities", activity["id"]))["deleted"] is False
    assert not await system.journal(outcome="deleted")

    # The link still holds: an ERP edit reaches the moved event, nothing is created.
    await system.erp_write("PUT", f"activities/{activity['id']}", {"subject": "Moving day (ERP edit)"})
    [event] = await eventually(lambda: items_where(system, "events", "subject", "Moving day (ERP edit)"))
    assert event["immutableId"] == created["id"] and event["containerId"] == archive["id"]


async def test_contact_folder_move_keeps_the_link_R21(system: System) -> None:
    created = await system.graph.post_json(
        f"{system.user_path()}/contacts",
        json={"givenName": "Mo", "surname": "Ved", "emailAddresses": [{"address": "mo.ved@acme.example"}]},
    )

    async def erp_contact() -> list[dict]:
        return [c for c in await system.erp_items("contacts") if c["emails"] == ["mo.ved@acme.example"]]

    [contact] = await eventually(erp_contact)
    folder = await system.graph.post_json(f"{system.user_path()}/contactFolders", json={"displayName": "Suppliers"})
    await system.graph.post_json(
        f"{system.user_path()}/contacts/{created['id']}/move", json={"destinationId": folder["id"]}
    )
    await system.sim_control("POST", "notifications/flush")
    # A later contact, after the move on the same queue, shows the move has been handled.
    await system.graph.post_json(
        f"{system.user_path()}/contacts",
        json={"givenName": "After", "surname": "Move", "emailAddresses": [{"address": "after@acme.example"}]},
    )
    await eventually(lambda: _contact_with(system, "after@acme.example"))
    record = await erp_record(system, "contacts", contact["id"])
    assert record["representatives"] == ["REP01"]  # not treated as a deletion (R20 would unassign)
    assert not await system.journal(outcome="unassigned")


async def _contact_with(system: System, email: str) -> list[dict]:
    return [c for c in await system.erp_items("contacts") if email in c["emails"]]


async def test_lost_link_is_refound_from_outlook_without_a_duplicate_R21(system: System) -> None:
    created = await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Refind me", at(days=3)))
    [activity] = await eventually(lambda: erp_activities(system, "Refind me"))
    await eventually(lambda: _stamped(system, created["id"]))
    await system.forget_links()

    await system.graph.patch_json(f"{system.user_path()}/events/{created['id']}", json={"subject": "Refound"})
    [after] = await eventually(lambda: erp_activities(system, "Refound"))
    assert after["id"] == activity["id"]
    assert len(await erp_activities(system)) == 1
    [row] = await system.journal(outcome="relinked")
    assert row["rule"] == "R21" and row["erp_id"] == str(activity["id"]) and row["graph_id"] == created["id"]


async def _stamped(system: System, immutable_id: str) -> bool:
    item = await system.sim_item("events", immutable_id)
    return bool(item) and ext_value(item, "ErpId") is not None


@pytest.mark.parametrize(("kind", "field"), [("meeting", "subject"), ("task", "title")])
async def test_lost_link_is_refound_from_the_erp_without_a_duplicate_R21(system: System, kind: str, field: str) -> None:
    collection = "events" if kind == "meeting" else "tasks"
    body = (
        meeting_body("Lost link", at(days=3))
        if kind == "meeting"
        else {"kind": "task", "subject": "Lost link", "representative": "REP01"}
    )
    activity = await system.erp_write("POST", "activities", body, expect=201)
    [mirror] = await eventually(lambda: items_where(system, collection, field, "Lost link"))
    await system.forget_links()

    await system.erp_write("PUT", f"activities/{activity['id']}", {"subject": "Lost link (ERP edit)"})
    [after] = await eventually(lambda: items_where(system, collection, field, "Lost link (ERP edit)"))
    assert after["immutableId"] == mirror["immutableId"]
    assert len(await system.sim_items(collection)) == 1


async def test_a_sync_write_to_outlook_is_not_echoed_back_to_the_erp_R22(system: System) -> None:
    meeting = await system.erp_write("POST", "activities", meeting_body("No echo", at(days=3)), expect=201)
    [event] = await eventually(lambda: items_where(system, "events", "subject", "No echo"))
    await settled(system, "Barrier 1")
    assert (await erp_record(system, "activities", meeting["id"]))["version"] == meeting["version"]
    [again] = await items_where(system, "events", "subject", "No echo")
    assert again["changeKey"] == event["changeKey"]  # written once

    updated = await system.erp_write("PUT", f"activities/{meeting['id']}", {"location": "Coimbra"})
    await eventually(lambda: _location(system, "No echo", "Coimbra"))
    [event] = await items_where(system, "events", "subject", "No echo")
    await settled(system, "Barrier 2")
    assert (await erp_record(system, "activities", meeting["id"]))["version"] == updated["version"]
    [again] = await items_where(system, "events", "subject", "No echo")
    assert again["changeKey"] == event["changeKey"]


async def _location(system: System, subject: str, location: str) -> bool:
    return any(
        (e["data"].get("location") or {}).get("displayName") == location
        for e in await items_where(system, "events", "subject", subject)
    )


async def test_a_sync_write_to_the_erp_is_not_echoed_back_to_outlook_R22(system: System) -> None:
    created = await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Echo test", at(days=3)))
    [activity] = await eventually(lambda: erp_activities(system, "Echo test"))
    await eventually(lambda: _stamped(system, created["id"]))
    stamped = await system.sim_item("events", created["id"])
    await settled(system, "Barrier 1")
    assert (await erp_record(system, "activities", activity["id"]))["version"] == activity["version"]
    final = await system.sim_item("events", created["id"])
    assert final is not None and stamped is not None and final["changeKey"] == stamped["changeKey"]

    await system.graph.patch_json(f"{system.user_path()}/events/{created['id']}", json={"subject": "Echo test 2"})
    [after] = await eventually(lambda: erp_activities(system, "Echo test 2"))
    edited = await system.sim_item("events", created["id"])
    await settled(system, "Barrier 2")
    assert (await erp_record(system, "activities", activity["id"]))["version"] == after["version"]
    final = await system.sim_item("events", created["id"])
    assert final is not None and edited is not None and final["changeKey"] == edited["changeKey"]
    assert after["version"] == activity["version"] + 1  # one write per change
