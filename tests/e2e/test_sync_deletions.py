"""Deletions both ways (R19, R20) and leaving scope without deleting anything (R32)."""

from __future__ import annotations

import pytest

from tests.support.items import at, event_body, meeting_body
from tests.support.system import System, eventually


async def erp_record(system: System, collection: str, erp_id: int | str) -> dict:
    r = await system.erp.get(f"/api/v1/{collection}/{erp_id}")
    r.raise_for_status()
    return dict(r.json())


async def live(system: System, kind: str, immutable_id: str) -> bool:
    item = await system.sim_item(kind, immutable_id)
    return item is not None and not item["deleted"]


async def mirror_of(system: System, kind: str, field: str, value: str) -> dict:
    async def found() -> list[dict]:
        return [i for i in await system.sim_items(kind) if i["data"].get(field) == value]

    [item] = await eventually(found)
    return item


async def imported(system: System, subject: str) -> dict:
    async def found() -> list[dict]:
        return [a for a in await system.erp_items("activities") if a["subject"] == subject]

    [activity] = await eventually(found)
    return activity


async def test_erp_deletion_deletes_the_outlook_meeting_and_task_R19(system: System) -> None:
    meeting = await system.erp_write("POST", "activities", meeting_body("To be cancelled", at(days=3)), expect=201)
    task = await system.erp_write(
        "POST", "activities", {"kind": "task", "subject": "To be dropped", "representative": "REP01"}, expect=201
    )
    event = await mirror_of(system, "events", "subject", "To be cancelled")
    todo = await mirror_of(system, "tasks", "title", "To be dropped")

    await system.erp_write("DELETE", f"activities/{meeting['id']}")
    await system.erp_write("DELETE", f"activities/{task['id']}")

    await eventually(lambda: _gone(system, "events", event["immutableId"]))
    await eventually(lambda: _gone(system, "tasks", todo["immutableId"]))

    async def journaled() -> bool:
        rows = await system.journal(outcome="deleted", rule="R19")
        return {r["erp_id"] for r in rows} == {str(meeting["id"]), str(task["id"])}

    await eventually(journaled)


async def _gone(system: System, kind: str, immutable_id: str) -> bool:
    return not await live(system, kind, immutable_id)


async def test_outlook_deletion_deletes_the_erp_meeting_and_task_R20(system: System) -> None:
    event = await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Delete me", at(days=3)))
    tasks = await system.tasks_path()
    todo = await system.graph.post_json(tasks, json={"title": "Delete me too"})
    meeting = await imported(system, "Delete me")
    task = await imported(system, "Delete me too")

    await system.graph.delete(f"{system.user_path()}/events/{event['id']}")
    await system.graph.delete(f"{tasks}/{todo['id']}")

    async def deleted() -> bool:
        records = [await erp_record(system, "activities", a["id"]) for a in (meeting, task)]
        return all(r["deleted"] for r in records)

    await eventually(deleted)
    rows = await system.journal(outcome="deleted", rule="R20")
    assert {r["erp_id"] for r in rows} == {str(meeting["id"]), str(task["id"])}


async def test_outlook_contact_deletion_only_removes_the_users_assignment_R20(system: System) -> None:
    await system.erp_write(
        "POST", "representatives", {"code": "REP02", "name": "Rui", "email": "rui@contoso.example", "sales_role": True}
    )
    created = await system.graph.post_json(
        f"{system.user_path()}/contacts",
        json={"givenName": "Keep", "surname": "Me", "emailAddresses": [{"address": "keep.me@acme.example"}]},
    )

    async def erp_contact() -> list[dict]:
        return [c for c in await system.erp_items("contacts") if c["emails"] == ["keep.me@acme.example"]]

    [contact] = await eventually(erp_contact)
    # Another representative works with the contact too.
    await system.erp_write("PUT", f"contacts/{contact['id']}", {"representatives": ["REP01", "REP02"]})

    await system.graph.delete(f"{system.user_path()}/contacts/{created['id']}")

    async def unassigned() -> dict | None:
        record = await erp_record(system, "contacts", contact["id"])
        return record if record["representatives"] == ["REP02"] else None

    record = await eventually(unassigned)
    assert record["deleted"] is False  # R20: contacts are never deleted from Outlook
    [row] = await eventually(lambda: system.journal(outcome="unassigned"))
    assert row["rule"] == "R20" and row["erp_id"] == str(contact["id"])

    # The user adds the person again, then removes them again: a second removal, not a replay of the
    # first (the ERP remembers idempotency keys for days).
    again = await system.graph.post_json(
        f"{system.user_path()}/contacts",
        json={"givenName": "Keep", "surname": "Me", "emailAddresses": [{"address": "keep.me@acme.example"}]},
    )

    async def reassigned() -> bool:
        record = await erp_record(system, "contacts", contact["id"])
        return sorted(record["representatives"]) == ["REP01", "REP02"]

    await eventually(reassigned)

    async def linked_again() -> list[dict]:
        return [r for r in await system.journal(outcome="created") if r["graph_id"] == again["id"]]

    await eventually(linked_again)
    await system.graph.delete(f"{system.user_path()}/contacts/{again['id']}")
    await eventually(unassigned)
    assert len(await eventually(lambda: system.journal(outcome="unassigned"))) >= 1


@pytest.mark.representative(contacts_two_way=True)
async def test_erp_contact_deletion_deletes_the_outlook_contact_when_two_way_R19(system: System) -> None:
    contact = await system.erp_write(
        "POST",
        "contacts",
        {"given_name": "Gone", "surname": "Soon", "emails": ["gone.soon@acme.example"], "representatives": ["REP01"]},
        expect=201,
    )
    mirror = await mirror_of(system, "contacts", "givenName", "Gone")
    await system.erp_write("DELETE", f"contacts/{contact['id']}")
    await eventually(lambda: _gone(system, "contacts", mirror["immutableId"]))


async def test_switching_meetings_off_unlinks_and_deletes_nothing_R32(system: System) -> None:
    meeting = await system.erp_write("POST", "activities", meeting_body("Stays put", at(days=3)), expect=201)
    event = await mirror_of(system, "events", "subject", "Stays put")

    await system.set_representative(sync_meetings=False)
    await system.erp_write("PUT", f"activities/{meeting['id']}", {"subject": "Stays put (ERP edit)"})
    [row] = await eventually(lambda: system.journal(outcome="unlinked"))
    assert row["rule"] == "R16" and row["erp_id"] == str(meeting["id"])
    await system.erp_write("DELETE", f"activities/{meeting['id']}")

    # Switched back on: the deletion and the edit are not replayed on the old mirror, which stays.
    await system.set_representative(sync_meetings=True)
    later = await system.erp_write("POST", "activities", meeting_body("Barrier", at(days=4)), expect=201)
    await mirror_of(system, "events", "subject", "Barrier")
    item = await system.sim_item("events", event["immutableId"])
    assert item is not None and not item["deleted"] and item["data"]["subject"] == "Stays put"
    assert later["id"] != meeting["id"]
