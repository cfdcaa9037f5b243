"""What keeps the sync cheap without losing anything: our own writes are not read back (R22), Outlook
writes are made over the version read (a user's edit in between is never overwritten, R18), and a
delta page is read through `$batch` and applied several items at once, each item once (R29, R30)."""

from __future__ import annotations

import asyncio

import pytest

from shared.envelope import Kind, MessageType
from shared.graph.errors import GraphPreconditionFailed
from sync_core.adapters.mailbox import Mailbox
from tests.support.items import at, event_body, ext_value, meeting_body
from tests.support.system import USER_EMAIL, System, eventually


def requests_to(stats: dict, method: str, suffix: str) -> int:
    """How many `method` requests the simulator served on paths ending with `suffix` (all statuses)."""
    return sum(
        sum(by_status.values())
        for path, by_status in stats["requests"].items()
        if path.startswith(f"{method} ") and path.endswith(suffix)
    )


async def quiet(system: System, seconds: float) -> bool:
    """True when the journal did not grow for `seconds` (sync-core has nothing left in hand)."""
    before = len(await system.journal())
    await asyncio.sleep(seconds)
    return len(await system.journal()) == before


async def test_own_write_coming_back_is_not_read_again_R22(system: System) -> None:
    """The notification of sync-core's own write names the version it wrote (`@odata.etag`): no delta
    round is run for it, and the event is not read back. An edit by the user afterwards has a version
    of its own and is synced as usual."""
    before = await system.sim_control("GET", "stats")
    meeting = await system.erp_write("POST", "activities", meeting_body("Not read back", at(days=3)), expect=201)

    async def linked() -> list[dict]:
        return [r for r in await system.journal(outcome="created") if r["erp_id"] == str(meeting["id"])]

    [line] = await eventually(linked)
    graph_id = line["graph_id"]

    async def echo_delivered() -> bool:
        for post in await system.sim_control("GET", "notifications"):
            for n in post["value"]:
                if (n.get("resourceData") or {}).get("id") == graph_id and isinstance(post["status"], int):
                    return 200 <= post["status"] < 300
        return False

    await eventually(echo_delivered, timeout=20)
    await eventually(lambda: quiet(system, 1.0), timeout=20)
    after = await system.sim_control("GET", "stats")
    item_gets = requests_to(after, "GET", "/events/{id}") - requests_to(before, "GET", "/events/{id}")
    assert item_gets == 0, "the echo of sync-core's own write was read from Graph again"
    assert requests_to(after, "GET", "/delta") == requests_to(before, "GET", "/delta"), "a delta round ran for it"
    assert [e["data"]["subject"] for e in await system.sim_items("events")] == ["Not read back"]

    # The user's own edit of that event is a version sync-core did not write: it reaches the ERP.
    await system.graph.patch_json(f"{system.user_path()}/events/{graph_id}", json={"subject": "Edited by the user"})

    async def in_the_erp() -> bool:
        return [a["subject"] for a in await system.erp_items("activities")] == ["Edited by the user"]

    await eventually(in_the_erp, timeout=20)


async def test_outlook_write_over_a_stale_version_is_refused_and_the_user_edit_kept_R18(system: System) -> None:
    # The writes below are this test's own: sync-core must not hear of the event and stamp it (R21)
    # between the test's read and its write, which would make the test's version stale too.
    await system.sim_control("POST", "faults", {"notifications": {"drop_ratio": 1.0}})
    mailbox = Mailbox(system.graph, USER_EMAIL, system.graph_user_id)
    created = await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Read", at(days=5)))
    read = await mailbox.get(Kind.EVENT, created["id"])
    assert read is not None
    # The user edits the event after sync-core read it, before sync-core writes.
    await system.graph.patch_json(f"{system.user_path()}/events/{created['id']}", json={"subject": "User's edit"})
    with pytest.raises(GraphPreconditionFailed):
        await mailbox.update(Kind.EVENT, created["id"], {"subject": "Stale overwrite"}, over=read)
    # The ERP id stamp (R21) is still written, but no change key is returned: the edit is still to sync.
    assert await mailbox.stamp_erp_ref(Kind.EVENT, created["id"], "event:999", over=read) is None
    now = await mailbox.get(Kind.EVENT, created["id"])
    assert now is not None and now["subject"] == "User's edit"
    item = await system.sim_item("events", created["id"])
    assert item is not None and ext_value(item, "ErpId") == "event:999"
    # Over the current version both writes go through, and the stamp's change key is returned.
    key = await mailbox.stamp_erp_ref(Kind.EVENT, created["id"], "event:999", over=now)
    assert key and key != now["changeKey"]


async def test_a_large_delta_page_is_read_in_batches_and_each_item_arrives_once_R29_R30(system: System) -> None:
    """45 events, 3 contacts sharing one e-mail address and 2 copies of one event carrying the same
    ERP id arrive in one delta round (notifications dropped, then a resync)."""
    await system.sim_control("POST", "faults", {"notifications": {"drop_ratio": 1.0}})
    path = system.user_path()
    names = [f"Bulk {i:02d}" for i in range(45)]
    for i, name in enumerate(names):
        await system.graph.post_json(f"{path}/events", json=event_body(name, at(days=2 + i // 8, hour=7 + i % 8)))
    for given in ("Rui", "Rui A.", "Rui B."):
        await system.graph.post_json(
            f"{path}/contacts",
            json={"givenName": given, "surname": "Costa", "emailAddresses": [{"address": "rui.costa@acme.example"}]},
        )
    await system.sim_control("POST", "notifications/flush")
    await system.sim_control("POST", "faults", {"notifications": {"drop_ratio": 0.0}})
    before = await system.sim_control("GET", "stats")
    for kind in (Kind.EVENT, Kind.CONTACT):
        await system.publish(MessageType.GRAPH_RESYNC, kind=kind)

    async def all_in_erp() -> bool:
        subjects = sorted(a["subject"] for a in await system.erp_items("activities"))
        contacts = await system.erp_items("contacts")
        return subjects == names and len(contacts) >= 1

    await eventually(all_in_erp, timeout=60)
    await eventually(lambda: quiet(system, 1.0), timeout=30)
    subjects = sorted(a["subject"] for a in await system.erp_items("activities"))
    assert subjects == names  # each once
    rui = [c for c in await system.erp_items("contacts") if "rui.costa@acme.example" in c["emails"]]
    assert len(rui) == 1, rui  # one ERP contact per person, though three Outlook contacts came at once
    after = await system.sim_control("GET", "stats")
    # The 45 events were read in $batch requests of 20 (the simulator counts each sub-request as a
    # GET of its item, too): three batches at least, and each event read once.
    assert requests_to(after, "POST", "/$batch") - requests_to(before, "POST", "/$batch") >= 3
    reads = requests_to(after, "GET", "/events/{id}") - requests_to(before, "GET", "/events/{id}")
    assert reads == len(names), reads
    assert not await system.journal(outcome="failed")
    stamped = [e for e in await system.sim_items("events") if ext_value(e, "ErpId")]
    assert len(stamped) == len(names)  # R21: every one carries its ERP id


async def test_a_new_erp_meeting_is_created_in_outlook_without_searching_for_a_mirror_R21(system: System) -> None:
    """The ERP's own creation event, delivered the first time, cannot have a mirror yet: no `$filter`
    search before the create (one Graph request fewer per creation). A redelivery, a repair or a
    force sync still searches (`test_lost_link_is_refound_from_the_erp_without_a_duplicate_R21`, the
    crash-window tests)."""
    before = await system.sim_control("GET", "stats")
    meeting = await system.erp_write("POST", "activities", meeting_body("No search", at(days=4)), expect=201)

    async def linked() -> list[dict]:
        return [r for r in await system.journal(outcome="created") if r["erp_id"] == str(meeting["id"])]

    await eventually(linked)
    after = await system.sim_control("GET", "stats")
    searches = requests_to(after, "GET", "/events") - requests_to(before, "GET", "/events")
    assert searches == 0, "a mirror was searched for before creating a new ERP meeting"
    assert requests_to(after, "POST", "/events") - requests_to(before, "POST", "/events") == 1


async def test_stamps_that_queue_up_go_together_in_a_batch_and_a_stale_one_alone_R21_R18(system: System) -> None:
    """A delta page's new items are stamped with their ERP ids through `$batch`, not one PATCH each; a
    stamp over a version the user changed meanwhile is answered 412 in the batch, sent again alone,
    and written without returning a change key (the user's edit is still to sync), as if never batched."""
    await system.sim_control("POST", "faults", {"notifications": {"drop_ratio": 1.0}})  # sync-core stays out
    mailbox = Mailbox(system.graph, USER_EMAIL, system.graph_user_id)
    path = system.user_path()
    created = [
        await system.graph.post_json(f"{path}/events", json=event_body(f"Stamp {i}", at(days=6, hour=7 + i)))
        for i in range(8)
    ]
    reads = [await mailbox.get(Kind.EVENT, c["id"]) for c in created]
    await system.graph.patch_json(f"{path}/events/{created[-1]['id']}", json={"subject": "User's edit"})
    before = await system.sim_control("GET", "stats")
    keys = await asyncio.gather(
        *[
            mailbox.stamp_erp_ref(Kind.EVENT, c["id"], f"event:{900 + i}", over=read)
            for i, (c, read) in enumerate(zip(created, reads, strict=True))
        ]
    )
    after = await system.sim_control("GET", "stats")
    assert requests_to(after, "POST", "/$batch") - requests_to(before, "POST", "/$batch") >= 1
    assert all(k and k != r["changeKey"] for k, r in zip(keys[:-1], reads, strict=False) if r)  # type: ignore[index]
    assert keys[-1] is None
    for i, c in enumerate(created):
        item = await system.sim_item("events", c["id"])
        assert item is not None and ext_value(item, "ErpId") == f"event:{900 + i}"
    last = await system.sim_item("events", created[-1]["id"])
    assert last is not None and last["data"]["subject"] == "User's edit"
