"""The ERP's write API failing for a while (issue 9), behind an HTTP proxy sync-core talks to
(`tests/support/http_fault_proxy.py`): writes answered 503, either refused before the ERP or applied by
it with the answer lost. sync-core retries through the retry queues with the same idempotency keys;
every change arrives once on each side (R21: nothing duplicated)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.reliability.support import Harness, dead_letter_depths, replay_injected_dead_letters
from tests.reliability.test_reliability_focused import both_sides, converged
from tests.support.http_fault_proxy import HttpFaultProxy
from tests.support.items import at, event_body, meeting_body
from tests.support.system import System, eventually


async def outlook_and_erp_changes(system: System, tag: str, n: int, day: int) -> list[str]:
    """n Outlook events, n To Do tasks and n ERP meetings, all at once; returns their names."""
    tasks = await system.tasks_path()
    names: list[str] = []
    work = []
    for i in range(n):
        start = at(days=day, hour=7 + 3 * i)
        names += [f"{tag} Outlook {i}", f"{tag} task {i}", f"{tag} ERP {i}"]
        work += [
            system.graph.post_json(f"{system.user_path()}/events", json=event_body(f"{tag} Outlook {i}", start)),
            system.graph.post_json(tasks, json={"title": f"{tag} task {i}"}),
            system.erp_write(
                "POST", "activities", meeting_body(f"{tag} ERP {i}", start + timedelta(hours=1)), expect=201
            ),
        ]
    await asyncio.gather(*work)
    return names


async def settle(system: System, names: list[str]) -> None:
    await eventually(lambda: converged(system, names), timeout=40, interval=0.3)
    await asyncio.sleep(1.0)  # a late duplicate would show now
    erp, outlook = await both_sides(system)
    assert erp == sorted(names) == outlook, {"erp": erp, "outlook": outlook}
    assert all(depth == 0 for depth in (await dead_letter_depths(system)).values())


async def test_erp_outage_refused_writes_are_retried_and_arrive_once(
    harness: Harness, erp_faults: HttpFaultProxy
) -> None:
    system = harness.system
    erp_faults.outage(0.8, seed=1, lost_ratio=0.0)  # within the retry delays (100, 300, 600 ms)
    # At least one refusal whenever sync-core's first write comes (the window may close before it does).
    erp_faults.refuse_next("POST", "/api/v1/activities")
    names = await outlook_and_erp_changes(system, "Refused", 3, day=3)
    await settle(system, names)
    assert erp_faults.refused > 0 and erp_faults.lost == 0


async def test_erp_outage_lost_answers_of_creates_from_outlook_duplicate_nothing(
    harness: Harness, erp_faults: HttpFaultProxy
) -> None:
    """Finding 3 (docs/reliability.md): the ERP's change event of an activity created from Outlook whose
    answer was lost comes before the retried delta round links it; it must not copy it back to Outlook."""
    system = harness.system
    erp_faults.outage(0.5, seed=1, lost_ratio=1.0)  # every write reaches the ERP, every answer is lost
    # At least one lost create whenever sync-core's first one comes (the window may close before it does).
    erp_faults.lose_next("POST", "/api/v1/activities")
    names = await outlook_and_erp_changes(system, "Lost", 2, day=5)
    await settle(system, names)
    assert erp_faults.lost > 0


async def test_erp_outage_lost_answer_of_a_contact_create_from_outlook_is_linked_once(
    harness: Harness, erp_faults: HttpFaultProxy
) -> None:
    system = harness.system
    # The answer of the create itself is lost, whenever it comes (sync-core searches the ERP for the
    # contact first, and a time window could close before the POST under load).
    erp_faults.lose_next("POST", "/api/v1/contacts")
    await system.graph.post_json(
        f"{system.user_path()}/contacts",
        json={"givenName": "Lost", "surname": "Answer", "emailAddresses": [{"address": "lost@acme.example"}]},
    )

    async def linked() -> bool:
        rows = await system.journal()
        return any(r["kind"] == "contact" and r["outcome"] in ("created", "updated", "relinked") for r in rows)

    await eventually(linked, timeout=20)
    await asyncio.sleep(1.5)  # every retry of the message has run by now
    assert erp_faults.lost_by_method["POST"] >= 1
    contacts = [c for c in await system.erp_items("contacts") if "lost@acme.example" in c["emails"]]
    assert len(contacts) == 1 and "REP01" in contacts[0]["representatives"]
    assert not await system.journal(outcome="failed")
    assert all(depth == 0 for depth in (await dead_letter_depths(system)).values())


async def test_erp_outage_lost_answer_then_deleted_in_outlook_leaves_nothing_in_the_erp_R20(
    harness: Harness, erp_faults: HttpFaultProxy
) -> None:
    """Finding 6 (docs/reliability.md): the ERP applied a create from Outlook and its answer was lost;
    the user deleted the event before sync-core's retry. The retry sees a removed item with no link:
    the remembered create is replayed with its key (finding the record) and deleted (R20)."""
    system = harness.system
    erp_faults.outage(3.0, seed=1, lost_ratio=1.0)  # longer than the retry delays: it is dead-lettered
    created = await system.graph.post_json(
        f"{system.user_path()}/events", json=event_body("Lost then deleted", at(days=4))
    )

    async def applied_in_the_erp() -> list[dict]:
        return [a for a in await system.erp_items("activities") if a["subject"] == "Lost then deleted"]

    await eventually(applied_in_the_erp, timeout=10, interval=0.1)
    await system.graph.delete(f"{system.user_path()}/events/{created['id']}")
    erp_faults.up()
    await asyncio.sleep(1.5)  # the deletion's own delta round has run by now
    await replay_injected_dead_letters(system)  # what an operator does once the ERP is back

    async def gone_from_the_erp() -> bool:
        return all(a["deleted"] for a in await system.erp_items("activities", include_deleted=True))

    await eventually(gone_from_the_erp, timeout=20)
    assert [a["subject"] for a in await system.erp_items("activities") if not a["deleted"]] == []
    [line] = [r for r in await system.journal(outcome="deleted") if r["graph_id"] == created["id"]]
    assert line["rule"] == "R20"
    assert all(depth == 0 for depth in (await dead_letter_depths(system)).values())


async def test_erp_outage_lost_answer_of_an_update_does_not_undo_a_later_outlook_edit_R18(
    harness: Harness, erp_faults: HttpFaultProxy
) -> None:
    """Finding 7 (docs/reliability.md): sync-core read a To Do title and wrote it to the ERP; the ERP
    was slow, the user renamed the task again meanwhile, the ERP applied the older title after that
    rename and its answer was lost. The ERP's version is sync-core's own copy of an older Outlook
    version, not an ERP edit: it must not win a last-modified conflict (R18) over the newer rename."""
    system = harness.system
    tasks = await system.tasks_path()
    created = await system.graph.post_json(tasks, json={"title": "Renamed 1"})
    await eventually(lambda: converged(system, ["Renamed 1"]), timeout=20, interval=0.2)
    await asyncio.sleep(0.5)  # the stamp's echo has gone by
    [erp] = await system.erp_items("activities")

    erp_faults.lose_next("PUT", f"/api/v1/activities/{erp['id']}", hold=1.0)
    await system.graph.patch_json(f"{tasks}/{created['id']}", json={"title": "Renamed 2"})

    async def held() -> bool:
        return erp_faults.held == 1

    async def lost() -> bool:
        return erp_faults.lost == 1

    await eventually(held, timeout=10, interval=0.05)
    # Renamed while sync-core's write of the older title is on its way; the ERP applies it after this.
    await system.graph.patch_json(f"{tasks}/{created['id']}", json={"title": "Renamed 3"})
    await eventually(lost, timeout=10, interval=0.05)

    await eventually(lambda: converged(system, ["Renamed 3"]), timeout=20, interval=0.2)
    await asyncio.sleep(2.0)  # every retry and the ERP's change events have run by now
    erp_side, outlook = await both_sides(system)
    assert erp_side == ["Renamed 3"] == outlook, {"erp": erp_side, "outlook": outlook}
    assert not [r for r in await system.journal(outcome="conflict")], "our own write was taken for an ERP edit"
    assert all(depth == 0 for depth in (await dead_letter_depths(system)).values())
