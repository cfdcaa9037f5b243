"""Reconciliation (R26): each kind of discrepancy found on a running system, and its repair carried out."""

from __future__ import annotations

from typing import Any

import httpx

from shared.settings import CommonSettings
from tests.ops.conftest import SYNC_OVERRIDES
from tests.ops.ops_support import (
    console,
    csrf_of,
    erp_meeting,
    imported,
    mirrored,
    notifications_dropped,
    outlook_event,
    slot,
)
from tests.support.items import event_body
from tests.support.system import OPS_TOKEN, USER_EMAIL, System, eventually, running_system

ERP_ID = "String {7d5e2c1a-3b4f-4c8e-9a6d-2f1e0b9c8d7a} Name ErpId"


async def _anomalies(ops: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await ops.post("/api/v1/ops/users/REP01/reconcile")
    assert r.status_code == 200, r.text
    assert r.json()["error"] is None
    return list((await ops.get("/api/v1/ops/anomalies", params={"user": USER_EMAIL})).json())


async def _repaired(ops: httpx.AsyncClient, anomaly: dict[str, Any], repair: str | None = None) -> None:
    """Repair, then reconcile until the anomaly is gone."""
    r = await ops.post(f"/api/v1/ops/anomalies/{anomaly['id']}/repair", json={"repair": repair})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "repair_requested" and r.json()["repaired_by"] == "ops-api:tests"

    async def gone() -> bool:
        return all(
            (a["type"], a["erp_id"], a["graph_id"]) != (anomaly["type"], anomaly["erp_id"], anomaly["graph_id"])
            for a in await _anomalies(ops)
        )

    await eventually(gone, timeout=20, interval=0.3)


def _one(rows: list[dict[str, Any]], type: str, **match: Any) -> dict[str, Any]:
    hits = [a for a in rows if a["type"] == type and all(a.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, (type, match, rows)
    return hits[0]


async def test_reconciliation_finds_each_discrepancy_and_repairs_it_R26(
    ops_system: System, ops: httpx.AsyncClient
) -> None:
    # In sync to begin with.
    meeting = await erp_meeting(ops_system, "R26 linked meeting")
    mirror = await mirrored(ops_system, "R26 linked meeting")
    drifting = await outlook_event(ops_system, "R26 drifting event")
    drifting_erp = await imported(ops_system, "R26 drifting event")
    gone = await erp_meeting(ops_system, "R26 mirror deleted")
    gone_mirror = await mirrored(ops_system, "R26 mirror deleted")
    unlinked = await erp_meeting(ops_system, "R26 mirror deleted, unlinked")
    unlinked_mirror = await mirrored(ops_system, "R26 mirror deleted, unlinked")
    assert [a for a in await _anomalies(ops) if "R26" in a["summary"]] == []

    # Missing in Outlook: created in the ERP while ERP → Outlook was off for the user.
    await ops_system.set_representative(activities_erp_to_outlook=False)
    only_erp = await erp_meeting(ops_system, "R26 only in the ERP")

    async def skipped() -> bool:
        return any(r["erp_id"] == str(only_erp["id"]) for r in await ops_system.journal(rule="R16"))

    await eventually(skipped)
    await ops_system.set_representative(activities_erp_to_outlook=True)

    async with notifications_dropped(ops_system):
        # Lost Outlook changes: a new event, a renamed one, a deleted mirror, a copy of a mirror.
        only_outlook = await outlook_event(ops_system, "R26 only in Outlook")
        await ops_system.graph.patch_json(
            f"/users/{ops_system.graph_user_id}/events/{drifting['id']}",
            json={"subject": "R26 drifting event, renamed"},
        )
        await ops_system.graph.delete(f"/users/{ops_system.graph_user_id}/events/{gone_mirror['id']}")
        await ops_system.graph.delete(f"/users/{ops_system.graph_user_id}/events/{unlinked_mirror['id']}")
        copy = await ops_system.graph.post_json(
            f"/users/{ops_system.graph_user_id}/events",
            json={
                **event_body("R26 linked meeting (copy)", slot()),
                "singleValueExtendedProperties": [{"id": ERP_ID, "value": f"event:{meeting['id']}"}],
            },
        )

        rows = await _anomalies(ops)
        missing_outlook = _one(rows, "missing_in_outlook", erp_id=str(only_erp["id"]))
        missing_erp = _one(rows, "missing_in_erp", graph_id=only_outlook["id"])
        drift = _one(rows, "field_drift", graph_id=drifting["id"])
        broken = _one(rows, "broken_link", erp_id=str(gone["id"]))
        duplicate = _one(rows, "duplicate", graph_id=copy["id"])
        assert missing_outlook["repairs"] == ["push_to_outlook"]
        assert missing_erp["repairs"] == ["push_to_erp"]
        assert drift["repairs"] == ["push_to_erp"]
        assert drift["details"]["fields"]["subject"] == {
            "outlook": "R26 drifting event, renamed",
            "erp": "R26 drifting event",
        }
        assert broken["repairs"] == ["recreate_in_outlook", "unlink"]
        assert duplicate["repairs"] == ["delete_outlook_duplicate"]
        assert str(meeting["id"]) == duplicate["erp_id"]

        # A second run keeps the ids of what it finds again.
        again = {a["id"] for a in await _anomalies(ops)}
        assert {missing_outlook["id"], drift["id"], duplicate["id"]} <= again

        # Each repaired through the sync path; reconciling again finds it no more.
        await _repaired(ops, missing_outlook)
        await mirrored(ops_system, "R26 only in the ERP")
        await _repaired(ops, missing_erp)
        await imported(ops_system, "R26 only in Outlook")
        await _repaired(ops, drift)
        assert (await ops_system.erp_write("GET", f"activities/{drifting_erp['id']}"))["subject"] == (
            "R26 drifting event, renamed"
        )
        await _repaired(ops, broken, "recreate_in_outlook")
        # Unlink keeps both sides as they are: the ERP meeting is then just not in Outlook.
        to_unlink = _one(await _anomalies(ops), "broken_link", erp_id=str(unlinked["id"]))
        await _repaired(ops, to_unlink, "unlink")
        [dropped] = await ops_system.journal(outcome="unlinked", rule="R26", actor="ops-api:tests", limit=1)
        assert dropped["erp_id"] == str(unlinked["id"])
        await _repaired(ops, _one(await _anomalies(ops), "missing_in_outlook", erp_id=str(unlinked["id"])))
        await mirrored(ops_system, "R26 mirror deleted")
        await _repaired(ops, duplicate)
        assert [
            e for e in await ops_system.sim_items("events") if e["data"].get("subject", "").endswith("(copy)")
        ] == []
        assert mirror  # the original mirror is untouched
        assert [a for a in await _anomalies(ops) if "R26" in a["summary"]] == []

    audits = await ops_system.journal(outcome="audit", rule="R26", actor="ops-api:tests")
    assert {a["details"]["action"] for a in audits} >= {
        "anomaly.push_to_outlook",
        "anomaly.push_to_erp",
        "anomaly.recreate_in_outlook",
        "anomaly.delete_outlook_duplicate",
    }


async def test_anomalies_page_lists_and_repairs_from_the_console_R26(
    ops_system: System, ops: httpx.AsyncClient
) -> None:
    await ops_system.set_representative(activities_erp_to_outlook=False)
    only_erp = await erp_meeting(ops_system, "R26 console only in the ERP")

    async def skipped() -> bool:
        return any(r["erp_id"] == str(only_erp["id"]) for r in await ops_system.journal(rule="R16"))

    await eventually(skipped)
    await ops_system.set_representative(activities_erp_to_outlook=True)
    async with console(ops_system) as client:
        page = (await client.get("/admin/anomalies")).text
        r = await client.post("/admin/anomalies/reconcile", data={"csrf_token": csrf_of(page), "user": USER_EMAIL})
        assert r.status_code == 303
        page = (await client.get(r.headers["location"])).text
        assert (
            "R26 console only in the ERP" in page and "missing_in_outlook" in page and "Re-push ERP → Outlook" in page
        )
        [anomaly] = [
            a
            for a in (await ops.get("/api/v1/ops/anomalies", params={"type": "missing_in_outlook"})).json()
            if a["erp_id"] == str(only_erp["id"])
        ]
        r = await client.post(
            f"/admin/anomalies/{anomaly['id']}/repair", data={"csrf_token": csrf_of(page), "repair": "push_to_outlook"}
        )
        assert r.status_code == 303
        assert "requested" in (await client.get(r.headers["location"])).text
    await mirrored(ops_system, "R26 console only in the ERP")
    [audit] = await ops_system.journal(outcome="audit", rule="R26", actor="admin:admin", limit=1)
    assert audit["details"]["action"] == "anomaly.push_to_outlook"


async def test_reconciliation_also_runs_on_a_schedule_R26(
    common_settings: CommonSettings, database_url: str, tmp_path: Any
) -> None:
    overrides = {**SYNC_OVERRIDES, "reconcile_interval_s": 0.5}
    async with (
        running_system(common_settings, database_url, tmp_path, sync_overrides=overrides) as system,
        httpx.AsyncClient(base_url=system.sync_url, headers={"Authorization": f"Bearer {OPS_TOKEN}"}) as ops,
    ):

        async def scheduled() -> list[dict[str, Any]]:
            runs = (await ops.get("/api/v1/ops/reconcile/runs")).json()
            return [r for r in runs if r["trigger"] == "schedule" and r["finished_at"]]

        [run, *_] = await eventually(scheduled, timeout=15)
        assert run["user"] == USER_EMAIL and run["error"] is None and run["anomalies"] == 0
