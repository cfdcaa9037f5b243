"""Users: switches written to the ERP (R16), last sync times (R23), health (R35), subscriptions."""

from __future__ import annotations

import httpx

from shared.envelope import Kind, MessageType
from tests.ops.ops_support import console, csrf_of, erp_meeting, imported, mirrored, outlook_event, subscriptions_back
from tests.support.system import USER_EMAIL, System, eventually


async def test_users_show_switches_policy_window_subscriptions_and_health_R35(
    ops_system: System, ops: httpx.AsyncClient
) -> None:
    r = await ops.get("/api/v1/ops/users")
    assert r.status_code == 200
    [ana] = [u for u in r.json() if u["code"] == "REP01"]
    assert ana["email"] == USER_EMAIL and ana["enabled"] is True
    assert ana["switches"]["sync_meetings"] is True and ana["switches"]["contacts_two_way"] is False
    assert ana["conflict_policy"] == "last_modified"
    assert (ana["window_days_back"], ana["window_days_ahead"]) == (30, 365)
    assert ana["healthy"] is True and ana["problems"] == []
    assert sorted(s["kind"] for s in ana["subscriptions"]) == ["contact", "event", "task"]
    assert all(s["status"] == "active" and s["expires_at"] for s in ana["subscriptions"])
    one = (await ops.get(f"/api/v1/ops/users/{USER_EMAIL}")).json()
    assert one["code"] == "REP01" and one["version"] == ana["version"]
    assert (await ops.get("/api/v1/ops/users/NOBODY")).status_code == 404


async def test_a_failing_user_is_flagged_on_the_console_R35(ops_system: System, ops: httpx.AsyncClient) -> None:
    # The app loses its consent: tokens already issued are refused (401), the mailbox fails.
    client_id = ops_system.sim.config.client_id
    await ops_system.sim_control("POST", f"apps/{client_id}", {"revoked": True})
    try:
        await ops_system.publish(MessageType.GRAPH_RESYNC, kind=Kind.EVENT, reason="manual")

        async def flagged() -> dict | None:
            u = (await ops.get("/api/v1/ops/users/REP01")).json()
            return u if not u["healthy"] else None

        user = await eventually(flagged, timeout=20)
        assert any("Graph" in p or "401" in p or "Auth" in p for p in user["problems"]), user["problems"]
        async with console(ops_system) as client:
            page = await client.get("/admin/users")
            assert 'class="badge bad" data-testid="health"' in page.text
    finally:
        await ops_system.sim_control("POST", f"apps/{client_id}", {"revoked": False})
    # One good sync clears the flag again.
    await ops_system.publish(MessageType.GRAPH_RESYNC, kind=Kind.EVENT, reason="manual")

    async def healthy() -> bool:
        return bool((await ops.get("/api/v1/ops/users/REP01")).json()["healthy"])

    await eventually(healthy, timeout=20)


async def test_last_sync_times_are_shown_R23(ops_system: System, ops: httpx.AsyncClient) -> None:
    await outlook_event(ops_system, "R23 from Outlook")
    await imported(ops_system, "R23 from Outlook")
    await erp_meeting(ops_system, "R23 from the ERP")
    await mirrored(ops_system, "R23 from the ERP")

    async def both() -> dict | None:
        u = (await ops.get("/api/v1/ops/users/REP01")).json()
        return u if u["last_sync_outlook_to_erp"] and u["last_sync_erp_to_outlook"] else None

    user = await eventually(both)
    state = {u["user"]: u for u in (await ops.get("/api/v1/ops/users/state")).json()}[USER_EMAIL]
    assert state["last_sync_outlook_to_erp"] and state["last_sync_erp_to_outlook"]
    async with console(ops_system) as client:
        page = (await client.get("/admin/users")).text
        assert 'data-testid="last-sync-outlook-to-erp"' in page and "never" not in _cell(
            page, "last-sync-outlook-to-erp"
        )
        assert "never" not in _cell(page, "last-sync-erp-to-outlook")
        detail = (await client.get("/admin/users/REP01")).text
        assert user["last_sync_erp_to_outlook"][:10] in detail


def _cell(page: str, testid: str) -> str:
    """REP01's cell of that column."""
    start = page.index(f'data-testid="{testid}"', page.index('data-user="REP01"'))
    return page[start : page.index("</td>", start)]


async def test_switch_changes_go_to_the_erp_with_version_check_and_audit_R16(
    ops_system: System, ops: httpx.AsyncClient
) -> None:
    before = (await ops.get("/api/v1/ops/users/REP01")).json()
    try:
        r = await ops.patch(
            "/api/v1/ops/users/REP01",
            json={
                "sync_calls": False,
                "conflict_policy": "erp_wins",
                "window_days_back": 10,
                "version": before["version"],
            },
        )
        assert r.status_code == 200, r.text
        after = r.json()
        assert after["switches"]["sync_calls"] is False and after["conflict_policy"] == "erp_wins"
        rep = await ops_system.erp_write("GET", "representatives/REP01")
        assert (rep["sync_calls"], rep["conflict_policy"], rep["window_days_back"]) == (False, "erp_wins", 10)
        # A write based on a stale read is refused, not silently applied.
        stale = await ops.patch("/api/v1/ops/users/REP01", json={"sync_tasks": False, "version": before["version"]})
        assert stale.status_code == 409 and "changed meanwhile" in stale.json()["detail"]
        assert (await ops_system.erp_write("GET", "representatives/REP01"))["sync_tasks"] is True
        # R13: the ERP refuses to enable a representative without a sales role; the reason comes through.
        await ops_system.erp_write(
            "POST",
            "representatives",
            {"code": "NOSALES", "name": "Back office", "email": "back@contoso.example", "sales_role": False},
        )
        refused = await ops.post("/api/v1/ops/users/NOSALES/enable")
        assert refused.status_code == 422 and "sales role" in refused.json()["detail"]
        assert (await ops.patch("/api/v1/ops/users/REP01", json={})).status_code == 422
        [audit] = await ops_system.journal(outcome="audit", actor="ops-api:tests", rule="R16", limit=1)
        assert audit["user"] == USER_EMAIL
        assert (
            "sync_calls True → False" in audit["reason"]
            and "conflict_policy last_modified → erp_wins" in audit["reason"]
        )
        assert audit["details"]["changes"]["window_days_back"] == {"from": 30, "to": 10}
    finally:
        await ops.patch(
            "/api/v1/ops/users/REP01",
            json={"sync_calls": True, "conflict_policy": "last_modified", "window_days_back": 30},
        )


async def test_switch_saved_from_the_console_is_audited_with_the_admin_R16(ops_system: System) -> None:
    async with console(ops_system) as client:
        page = (await client.get("/admin/users/REP01")).text
        form = {
            "csrf_token": csrf_of(page),
            "version": page.split('name="version" value="')[1].split('"')[0],
            "conflict_policy": "last_modified",
            "window_days_back": "30",
            "window_days_ahead": "365",
            # every switch on but meetings (unchecked boxes are not sent)
            **{
                name: "on"
                for name in (
                    "sync_enabled",
                    "contacts_outlook_to_erp",
                    "activities_outlook_to_erp",
                    "activities_erp_to_outlook",
                    "sync_tasks",
                    "sync_calls",
                    "sync_contacts",
                )
            },
        }
        try:
            r = await client.post("/admin/users/REP01/settings", data=form)
            assert r.status_code == 303
            page = (await client.get(r.headers["location"])).text
            assert "Saved." in page
            assert 'data-testid="switch-sync_meetings">' in page.replace(" checked", "")
            assert (await ops_system.erp_write("GET", "representatives/REP01"))["sync_meetings"] is False
            [audit] = await ops_system.journal(outcome="audit", actor="admin:admin", limit=1)
            assert "sync_meetings True → False" in audit["reason"]
        finally:
            await ops_system.set_representative(sync_meetings=True)
            await subscriptions_back(ops_system)


async def test_subscriptions_are_listed_and_renewal_is_requested(ops_system: System, ops: httpx.AsyncClient) -> None:
    subs = (await ops.get("/api/v1/ops/subscriptions", params={"user": USER_EMAIL})).json()
    assert sorted(s["kind"] for s in subs) == ["contact", "event", "task"]
    assert all("client_state" not in s and "clientState" not in s for s in subs)
    r = await ops.post(f"/api/v1/ops/subscriptions/{USER_EMAIL}/renew")
    assert r.status_code == 202 and r.json()["code"] == "REP01"
    [audit] = await ops_system.journal(outcome="audit", actor="ops-api:tests", limit=1)
    assert audit["details"]["action"] == "subscriptions.renew"
    # graph-webhook's status API needs the ops token as well.
    async with httpx.AsyncClient(base_url=ops_system.webhook_url) as anon:
        assert (await anon.get("/api/v1/subscriptions")).status_code == 401
