"""Force sync (R24), journal (R25), imported from Outlook (R27), test connection (R28) — API and console."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.ops.ops_support import console, csrf_of, erp_meeting, imported, mirrored, outlook_event
from tests.support.items import at
from tests.support.system import USER_EMAIL, System, eventually


async def _progress(ops: httpx.AsyncClient, accepted: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    params = {
        "direction": accepted["direction"],
        "since": accepted["requested_at"],
        "expected": len(accepted["messages"]),
        "requested_by": accepted["requested_by"],
    }

    async def finished() -> dict[str, Any] | None:
        p = (await ops.get("/api/v1/ops/users/REP01/force/progress", params=params)).json()
        return p if p["finished"] else None

    return await eventually(finished, timeout=timeout)


async def test_force_sync_resends_every_erp_item_without_duplicates_R24(
    ops_system: System, ops: httpx.AsyncClient
) -> None:
    """R24 (a): every ERP item of the user re-sent to Outlook; progress from the journal."""
    await erp_meeting(ops_system, "R24 ERP meeting")
    await mirrored(ops_system, "R24 ERP meeting")

    # Contacts stay out: they go Outlook → ERP only by default (R17).
    r = await ops.post("/api/v1/ops/users/REP01/force", json={"direction": "erp_to_outlook"})
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["kinds"] == ["event", "task"] and len(accepted["messages"]) == 2
    assert accepted["requested_by"] == "ops-api:tests"
    progress = await _progress(ops, accepted)
    assert progress["done"] == 2 and progress["items"] >= 1 and progress["failed"] == 0
    assert any("re-sent" in s for s in progress["summaries"])

    events = [e for e in await ops_system.sim_items("events") if e["data"].get("subject") == "R24 ERP meeting"]
    assert len(events) == 1, "re-sent, not duplicated"
    forced = await ops_system.journal(outcome="forced", actor="ops-api:tests", rule="R24", direction="erp_to_outlook")
    assert len(forced) >= 2
    [audit, *_] = await ops_system.journal(outcome="audit", rule="R24", actor="ops-api:tests")
    assert audit["direction"] == "erp_to_outlook" and "(a) ERP → Outlook" in audit["reason"]


async def test_force_sync_resends_outlook_items_modified_since_a_date_without_duplicates_R24(
    ops_system: System, ops: httpx.AsyncClient
) -> None:
    """R24 (b): Outlook items modified since a date re-sent to the ERP."""
    await outlook_event(ops_system, "R24 Outlook event")
    await imported(ops_system, "R24 Outlook event")
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    r = await ops.post("/api/v1/ops/users/REP01/force", json={"direction": "outlook_to_erp", "since": since})
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["kinds"] == ["event", "contact", "task"]
    progress = await _progress(ops, accepted)
    assert progress["done"] == 3 and progress["items"] >= 1 and progress["failed"] == 0
    activities = [a for a in await ops_system.erp_items("activities") if a["subject"] == "R24 Outlook event"]
    assert len(activities) == 1, "re-sent, not duplicated"
    assert (await ops.get("/api/v1/ops/dead-letters/sync-core")).json() == []


async def test_force_sync_is_refused_for_a_user_who_is_not_enabled_R24(
    ops_system: System, ops: httpx.AsyncClient
) -> None:
    await ops_system.erp_write(
        "POST",
        "representatives",
        {
            "code": "IDLE",
            "name": "Idle Rep",
            "email": "idle@contoso.example",
            "sales_role": True,
            "sync_enabled": False,
        },
    )
    r = await ops.post("/api/v1/ops/users/IDLE/force", json={"direction": "erp_to_outlook"})
    assert r.status_code == 409 and "not enabled" in r.json()["detail"]
    r = await ops.post("/api/v1/ops/users/REP01/force", json={"direction": "sideways"})
    assert r.status_code == 422


async def test_journal_filters_and_shows_remote_errors_with_trace_links_R25(
    ops_system: System, ops: httpx.AsyncClient
) -> None:
    started = datetime.now(UTC)
    # R11: an unknown company code from Outlook is an error in the journal, with the ERP's words.
    await ops_system.graph.post_json(
        f"/users/{ops_system.graph_user_id}/contacts",
        json={
            "givenName": "Zé",
            "surname": "Ninguém",
            "emailAddresses": [{"address": "ze@nowhere.example"}],
            "companyName": "#NOPE#",
        },
    )
    # R05: a private event is skipped, and the journal names the rule.
    await outlook_event(ops_system, "R25 private", sensitivity="private")

    async def both() -> list[dict[str, Any]] | None:
        rows = await ops_system.journal(user=USER_EMAIL, since=started.isoformat())
        failed = [r for r in rows if r["outcome"] == "failed" and r["rule"] == "R11"]
        skipped = [r for r in rows if r["outcome"] == "skipped" and r["rule"] == "R05"]
        return failed + skipped if failed and skipped else None

    rows = await eventually(both)
    failed = next(r for r in rows if r["outcome"] == "failed")
    assert "unknown_partner" in failed["reason"] and "#NOPE#" in failed["reason"]
    assert failed["trace_id"] and failed["trace_url"] == f"http://127.0.0.1:16686/trace/{failed['trace_id']}"

    filtered = await ops_system.journal(
        user=USER_EMAIL,
        kind="contact",
        direction="outlook_to_erp",
        outcome="failed",
        rule="R11",
        since=started.isoformat(),
    )
    assert [r["id"] for r in filtered] == [failed["id"]]
    assert await ops_system.journal(rule="R11", until=started.isoformat()) == []
    assert await ops_system.journal(rule="R11", kind="event", since=started.isoformat()) == []
    assert [r["id"] for r in await ops_system.journal(trace_id=failed["trace_id"], outcome="failed")] == [failed["id"]]

    async with console(ops_system) as client:
        page = await client.get("/admin/journal", params={"user": USER_EMAIL, "outcome": "failed", "rule": "R11"})
        assert "#NOPE#" in page.text and f'href="{failed["trace_url"]}"' in page.text
        assert "R25 private" not in page.text
        # The live part of the page is a fragment with the same rows.
        fragment = await client.get(
            "/admin/journal", params={"user": USER_EMAIL, "rule": "R05"}, headers={"X-Fragment": "1"}
        )
        assert fragment.status_code == 200 and "<html" not in fragment.text and "R05" in fragment.text


async def test_imported_from_outlook_lists_the_manual_columns_with_paging_R27(
    ops_system: System, ops: httpx.AsyncClient
) -> None:
    for n in range(3):
        await ops_system.graph.post_json(
            f"/users/{ops_system.graph_user_id}/events",
            json={
                "subject": f"R27 visit {n}",
                "start": {"dateTime": at(10 + n, 9, 30).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "end": {"dateTime": at(10 + n, 11, 0).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "location": {"displayName": f"Room {n}"},
                "body": {"contentType": "html", "content": f"<p>Bring the <b>contract</b> {n}</p>"},
            },
        )
    for n in range(3):
        await imported(ops_system, f"R27 visit {n}")

    first = (await ops.get("/api/v1/ops/imported", params={"user": "REP01", "limit": 2})).json()
    assert first["total"] >= 3 and len(first["items"]) == 2 and first["offset"] == 0
    rest = (await ops.get("/api/v1/ops/imported", params={"user": "REP01", "limit": 2, "offset": 2})).json()
    assert rest["offset"] == 2 and len(rest["items"]) == min(2, first["total"] - 2)
    everything = (await ops.get("/api/v1/ops/imported", params={"user": USER_EMAIL, "limit": 1000})).json()["items"]
    row = next(a for a in everything if a["subject"] == "R27 visit 1")
    assert row["start_date"] == at(11).date().isoformat()
    assert row["start_time"] == "09:30"
    assert row["duration_minutes"] == 90
    assert row["location"] == "Room 1"
    assert row["comment"] == "Bring the contract 1"
    assert row["last_update"] and row["user_code"] == "REP01" and row["kind"] == "meeting"
    # Only what came from Outlook: an ERP meeting is not listed.
    assert all(a["subject"] != "R24 ERP meeting" for a in everything)
    # Start date and time in another zone.
    lisbon = (await ops.get("/api/v1/ops/imported", params={"user": "REP01", "limit": 1000, "tz": "Asia/Tokyo"})).json()
    assert next(a for a in lisbon["items"] if a["subject"] == "R27 visit 1")["start_time"] == "18:30"
    assert (await ops.get("/api/v1/ops/imported", params={"tz": "Mars/Olympus"})).status_code == 422

    async with console(ops_system) as client:
        page = (await client.get("/admin/imported", params={"user": "REP01"})).text
        for text in ("R27 visit 1", "09:30", "1 h 30", "Room 1", "Bring the contract 1", "REP01", "page 1 of"):
            assert text in page, text


async def test_test_connection_says_which_part_fails_R28(ops_system: System, ops: httpx.AsyncClient) -> None:
    report = (await ops.post("/api/v1/ops/users/REP01/test-connection")).json()
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == ["graph_token", "mailbox", "subscriptions", "erp", "broker"]
    assert all(c["ok"] and c["detail"] and c["error"] is None for c in report["checks"])

    # A representative whose mailbox does not exist in the tenant: mailbox and subscriptions fail.
    await ops_system.erp_write(
        "POST",
        "representatives",
        {"code": "GHOST", "name": "No Mailbox", "email": "ghost@contoso.example", "sales_role": True},
    )
    report = (await ops.post("/api/v1/ops/users/GHOST/test-connection")).json()
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is False
    assert not checks["mailbox"]["ok"] and "ghost@contoso.example" in checks["mailbox"]["error"]
    assert not checks["subscriptions"]["ok"] and "no subscription" in checks["subscriptions"]["error"]
    assert checks["graph_token"]["ok"] and checks["erp"]["ok"] and checks["broker"]["ok"]

    # The app's secret was rotated in Entra: a new token is refused, and only that part fails.
    client_id = ops_system.sim.config.client_id
    await ops_system.sim_control("POST", f"apps/{client_id}", {"client_secret": "rotated-elsewhere"})
    try:
        report = (await ops.post("/api/v1/ops/users/REP01/test-connection")).json()
    finally:
        await ops_system.sim_control(
            "POST", f"apps/{client_id}", {"client_secret": ops_system.sim.config.client_secret}
        )
    checks = {c["name"]: c for c in report["checks"]}
    assert not checks["graph_token"]["ok"] and checks["graph_token"]["error"]
    assert all(checks[n]["ok"] for n in ("mailbox", "subscriptions", "erp", "broker")), checks
    [audit] = await ops_system.journal(outcome="audit", rule="R28", limit=1)
    assert audit["reason"].startswith("test connection failed: Graph token:")

    async with console(ops_system) as client:
        page = (await client.get("/admin/users/GHOST")).text
        result = await client.post("/admin/users/GHOST/test-connection", data={"csrf_token": csrf_of(page)})
        assert result.status_code == 200
        assert 'data-check="mailbox" data-ok="false"' in result.text
        assert 'data-check="erp" data-ok="true"' in result.text
