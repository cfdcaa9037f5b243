"""Both sides changed one item: the user's conflict policy decides, and the loser is journaled (R18).

The meeting is mirrored and edited in Outlook while the simulator drops change notifications, so
sync-core meets both edits at once when the ERP's change arrives (and no delta run triggered by the
mirror's creation can see the Outlook edit first). Which edit is later is set with the simulator's
clock (Outlook's `lastModifiedDateTime` follows it).
"""

from __future__ import annotations

import pytest

from tests.support.items import at, meeting_body
from tests.support.system import System, eventually


async def linked_meeting(system: System, subject: str) -> tuple[dict, dict]:
    await system.sim_control("POST", "faults", {"notifications": {"drop_ratio": 1.0}})
    activity = await system.erp_write("POST", "activities", meeting_body(subject, at(days=3)), expect=201)

    async def mirrored() -> list[dict]:
        return [e for e in await system.sim_items("events") if e["data"].get("subject") == subject]

    [event] = await eventually(mirrored)
    await system.sim_control("POST", "notifications/flush")
    return activity, event


async def edit_both(system: System, activity: dict, event: dict, *, outlook_later: bool) -> None:
    """Outlook's edit unseen (notification dropped), then the ERP's edit, which sync-core handles."""
    if outlook_later:
        await system.sim_control("POST", "clock", {"advance_seconds": 600})
    await system.graph.patch_json(
        f"{system.user_path()}/events/{event['immutableId']}", json={"subject": "Outlook edit"}
    )
    await system.sim_control("POST", "notifications/flush")
    await system.sim_control("POST", "faults", {"notifications": {"drop_ratio": 0.0}})
    await system.erp_write("PUT", f"activities/{activity['id']}", {"subject": "ERP edit"})


async def both_sides_say(system: System, activity: dict, event: dict, subject: str) -> None:
    async def agreed() -> bool:
        r = await system.erp.get(f"/api/v1/activities/{activity['id']}")
        outlook = await system.sim_item("events", event["immutableId"])
        return r.json()["subject"] == subject and outlook is not None and outlook["data"]["subject"] == subject

    await eventually(agreed)
    assert len(await system.erp_items("activities")) == 1
    assert len(await system.sim_items("events")) == 1


async def test_conflict_goes_to_the_later_erp_edit_by_default_R18(system: System) -> None:
    activity, event = await linked_meeting(system, "Conflict A")
    await edit_both(system, activity, event, outlook_later=False)
    await both_sides_say(system, activity, event, "ERP edit")
    [row] = await eventually(lambda: system.journal(rule="R18"))
    assert row["direction"] == "erp_to_outlook" and row["outcome"] == "updated"
    assert "last_modified" in row["reason"] and "incoming change wins" in row["reason"]


async def test_conflict_goes_to_the_later_outlook_edit_by_default_R18(system: System) -> None:
    activity, event = await linked_meeting(system, "Conflict B")
    await edit_both(system, activity, event, outlook_later=True)
    await both_sides_say(system, activity, event, "Outlook edit")
    rows = await eventually(lambda: system.journal(rule="R18", outcome="conflict"))
    assert rows[0]["erp_id"] == str(activity["id"])
    assert "incoming change loses" in rows[0]["reason"]  # the ERP's edit is journaled, not silently dropped


@pytest.mark.representative(conflict_policy="erp_wins")
async def test_erp_wins_policy_keeps_the_erp_edit_even_when_outlook_is_later_R18(system: System) -> None:
    activity, event = await linked_meeting(system, "Conflict C")
    await edit_both(system, activity, event, outlook_later=True)
    await both_sides_say(system, activity, event, "ERP edit")
    [row] = await eventually(lambda: system.journal(rule="R18"))
    assert "erp_wins" in row["reason"]


@pytest.mark.representative(conflict_policy="outlook_wins")
async def test_outlook_wins_policy_keeps_the_outlook_edit_even_when_the_erp_is_later_R18(system: System) -> None:
    activity, event = await linked_meeting(system, "Conflict D")
    await edit_both(system, activity, event, outlook_later=False)
    await both_sides_say(system, activity, event, "Outlook edit")
    rows = await eventually(lambda: system.journal(rule="R18", outcome="conflict"))
    assert "outlook_wins" in rows[0]["reason"]
