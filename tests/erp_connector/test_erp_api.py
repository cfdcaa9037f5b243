"""The ERP REST API over real HTTP, with the real broker: auth, CRUD, pagination, write semantics, rules."""

from __future__ import annotations

import asyncio

import httpx
from erp_support import Running, Tap, seed, sqlite_only

MEETING = {
    "kind": "meeting",
    "subject": "Quarterly review",
    "start": "2030-03-04T09:00:00Z",
    "end": "2030-03-04T10:00:00Z",
    "representative": "REP01",
    "partner_code": "ACME",
}


@sqlite_only
async def test_api_refuses_requests_without_the_bearer_token(erp: Running) -> None:
    async with httpx.AsyncClient(base_url=erp.url) as anonymous:
        missing = await anonymous.get("/api/v1/representatives")
        wrong = await anonymous.get("/api/v1/activities", headers={"Authorization": "Bearer nope"})
        write = await anonymous.post("/api/v1/partners", json={"code": "X", "name": "X", "type": "customer"})
    assert missing.status_code == wrong.status_code == write.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert (await erp.client.get("/api/v1/representatives")).status_code == 200


async def test_listings_paginate_with_total_limit_and_offset(erp: Running) -> None:
    for n in range(25):
        body = {"code": f"P{n:02d}", "name": f"Partner {n}", "type": "customer"}
        assert (await erp.client.post("/api/v1/partners", json=body)).status_code == 201
    page = (await erp.client.get("/api/v1/partners", params={"limit": 10, "offset": 20})).json()
    assert page["total"] == 25 and page["limit"] == 10 and page["offset"] == 20
    assert [p["code"] for p in page["items"]] == ["P20", "P21", "P22", "P23", "P24"]
    assert (await erp.client.get("/api/v1/partners", params={"limit": 1001})).status_code == 422


async def test_activity_crud_with_filters_and_chrono(erp: Running) -> None:
    await seed(erp.client)
    created = await erp.client.post("/api/v1/activities", json=MEETING)
    assert created.status_code == 201, created.text
    meeting = created.json()
    assert meeting["chrono"] == "MTG000001" and meeting["version"] == 1 and meeting["deleted"] is False
    assert meeting["start"] == "2030-03-04T09:00:00Z"
    assert created.headers["etag"] == '"1"' and created.headers["location"] == f"/api/v1/activities/{meeting['id']}"
    task = {"kind": "task", "subject": "Send quote", "due": "2030-03-05T00:00:00Z", "representative": "REP02"}
    assert (await erp.client.post("/api/v1/activities", json=task)).json()["chrono"] == "TSK000001"

    mine = (await erp.client.get("/api/v1/activities", params={"representative": "REP01"})).json()
    assert [a["chrono"] for a in mine["items"]] == ["MTG000001"]
    tasks = (await erp.client.get("/api/v1/activities", params={"kind": "task"})).json()
    assert [a["chrono"] for a in tasks["items"]] == ["TSK000001"]
    since = (await erp.client.get("/api/v1/activities", params={"updated_since": "2999-01-01T00:00:00Z"})).json()
    assert since["total"] == 0

    updated = await erp.client.put(f"/api/v1/activities/{meeting['id']}", json={"subject": "Review"})
    assert updated.json()["subject"] == "Review" and updated.json()["version"] == 2
    assert updated.json()["start"] == meeting["start"], "fields left out of a PUT keep their value"


async def test_delete_is_soft_and_the_tombstone_stays_readable(erp: Running) -> None:
    await seed(erp.client)
    meeting = (await erp.client.post("/api/v1/activities", json=MEETING)).json()
    deleted = await erp.client.delete(f"/api/v1/activities/{meeting['id']}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    tombstone = (await erp.client.get(f"/api/v1/activities/{meeting['id']}")).json()
    assert tombstone["deleted"] is True and tombstone["version"] == 2
    assert (await erp.client.get("/api/v1/activities")).json()["total"] == 0
    listed = (await erp.client.get("/api/v1/activities", params={"include_deleted": "true"})).json()
    assert [a["id"] for a in listed["items"]] == [meeting["id"]]
    again = await erp.client.put(f"/api/v1/activities/{meeting['id']}", json={"subject": "x"})
    assert again.status_code == 409 and again.json()["detail"]["code"] == "deleted"


async def test_retried_write_with_the_same_idempotency_key_returns_the_first_result(erp: Running, tap: Tap) -> None:
    await seed(erp.client)
    headers = {"Idempotency-Key": "sync-core:msg-1"}
    first = await erp.client.post("/api/v1/activities", json=MEETING, headers=headers)
    second = await erp.client.post("/api/v1/activities", json=MEETING, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert (await erp.client.get("/api/v1/activities")).json()["total"] == 1
    other = await erp.client.post("/api/v1/activities", json={**MEETING, "subject": "other"}, headers=headers)
    assert other.status_code == 422 and other.json()["detail"]["code"] == "idempotency_key_reused"
    await tap.wait_for(1, "erp.changed")
    await asyncio.sleep(0.3)
    assert len(tap.bodies("erp.changed")) == 1, "a replayed write publishes nothing"


async def test_retried_update_with_a_newer_if_match_gets_the_first_answer(erp: Running) -> None:
    await seed(erp.client)
    meeting = (await erp.client.post("/api/v1/activities", json=MEETING)).json()
    url = f"/api/v1/activities/{meeting['id']}"
    key = {"Idempotency-Key": "upd-1"}
    first = await erp.client.put(url, json={"subject": "v2"}, headers={**key, "If-Match": "1"})
    # The client crashed before recording the answer, re-read (version 2) and retried the same write.
    retry = await erp.client.put(url, json={"subject": "v2"}, headers={**key, "If-Match": "2"})
    assert retry.status_code == 200 and retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"


async def test_concurrent_retries_with_one_key_create_one_record(erp: Running) -> None:
    await seed(erp.client)
    body = {"given_name": "Zoe", "surname": "Ng", "emails": ["zoe@acme.example"]}
    answers = await asyncio.gather(
        *(erp.client.post("/api/v1/contacts", json=body, headers={"Idempotency-Key": "k-42"}) for _ in range(5))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert (await erp.client.get("/api/v1/contacts")).json()["total"] == 1


async def test_stale_if_match_is_refused_with_412_and_the_current_record(erp: Running) -> None:
    await seed(erp.client)
    meeting = (await erp.client.post("/api/v1/activities", json=MEETING)).json()
    url = f"/api/v1/activities/{meeting['id']}"
    ok = await erp.client.put(url, json={"subject": "v2"}, headers={"If-Match": '"1"'})
    assert ok.status_code == 200 and ok.headers["etag"] == '"2"'
    stale = await erp.client.put(url, json={"subject": "v3"}, headers={"If-Match": "1"})
    assert stale.status_code == 412
    assert stale.json()["detail"]["code"] == "version_conflict"
    assert stale.json()["detail"]["current"]["subject"] == "v2"
    assert stale.json()["detail"]["current"]["version"] == 2
    gone = await erp.client.delete(url, headers={"If-Match": "1"})
    assert gone.status_code == 412
    assert (await erp.client.delete(url, headers={"If-Match": "2"})).status_code == 200


async def test_overlapping_meeting_is_refused_with_409_R15(erp: Running) -> None:
    await seed(erp.client)
    assert (await erp.client.post("/api/v1/activities", json=MEETING)).status_code == 201
    clash = {**MEETING, "start": "2030-03-04T09:30:00Z", "end": "2030-03-04T11:00:00Z"}
    refused = await erp.client.post("/api/v1/activities", json=clash)
    assert refused.status_code == 409
    assert refused.json()["detail"]["code"] == "overlap"
    assert "MTG000001" in refused.json()["detail"]["message"]
    assert (await erp.client.post("/api/v1/activities", json={**clash, "representative": "REP02"})).status_code == 201


async def test_unknown_partner_code_is_refused_with_422_R11(erp: Running) -> None:
    await seed(erp.client)
    refused = await erp.client.post("/api/v1/activities", json={**MEETING, "partner_code": "NOPE"})
    assert refused.status_code == 422 and refused.json()["detail"]["code"] == "unknown_partner"
    contact = await erp.client.post("/api/v1/contacts", json={"surname": "X", "partner_code": "NOPE"})
    assert contact.status_code == 422 and contact.json()["detail"]["code"] == "unknown_partner"
    assert (await erp.client.get("/api/v1/partners/ACME")).json()["type"] == "customer"


async def test_partner_resolution_by_domain_prefers_customer_then_prospect_then_supplier_R10(erp: Running) -> None:
    await seed(erp.client)
    resolve = "/api/v1/partners/resolve"
    assert (await erp.client.get(resolve, params={"domain": "acme.example"})).json()["code"] == "ACME"
    assert (await erp.client.get(resolve, params={"domain": "SHARED.example"})).json()["code"] == "PROS"
    assert (await erp.client.get(resolve, params={"domain": "supp.example"})).json()["code"] == "SUPP"
    assert (await erp.client.get(resolve, params={"domain": "nowhere.example"})).status_code == 404
    contact = await erp.client.post("/api/v1/contacts", json={"surname": "Doe", "emails": ["jo@shared.example"]})
    assert contact.json()["partner_code"] == "PROS"
    stray = await erp.client.post("/api/v1/contacts", json={"surname": "Roe", "emails": ["x@nowhere.example"]})
    assert stray.json()["partner_code"] is None and stray.json()["group"] == "EXCHANGE"


async def test_removing_a_representative_from_a_contact_keeps_the_contact_R20(erp: Running) -> None:
    await seed(erp.client)
    body = {"surname": "Doe", "emails": ["jo@acme.example"], "representatives": ["REP01", "REP02"]}
    contact = (await erp.client.post("/api/v1/contacts", json=body)).json()
    removed = await erp.client.delete(f"/api/v1/contacts/{contact['id']}/representatives/rep01")
    assert removed.status_code == 200
    assert removed.json()["representatives"] == ["REP02"] and removed.json()["deleted"] is False
    mine = (await erp.client.get("/api/v1/contacts", params={"representative": "REP01"})).json()
    assert mine["total"] == 0
    by_email = (await erp.client.get("/api/v1/contacts", params={"email": "JO@acme.example"})).json()
    assert [c["id"] for c in by_email["items"]] == [contact["id"]]


async def test_representative_is_found_by_email_case_insensitively(erp: Running) -> None:
    await seed(erp.client)
    found = await erp.client.get("/api/v1/representatives/by-email/ana.silva@CONTOSO.example")
    assert found.status_code == 200 and found.json()["code"] == "REP01"
    assert found.json()["window_days_back"] == 30 and found.json()["conflict_policy"] == "last_modified"
    assert (await erp.client.get("/api/v1/representatives/by-email/nobody@x.example")).status_code == 404


@sqlite_only
async def test_representative_without_sales_role_cannot_be_enabled_R13(erp: Running) -> None:
    body = {"code": "REP09", "name": "No Sales", "email": "ns@contoso.example", "sync_enabled": True}
    refused = await erp.client.post("/api/v1/representatives", json=body)
    assert refused.status_code == 422 and refused.json()["detail"]["code"] == "sales_role_required"


@sqlite_only
async def test_validation_errors_name_the_field(erp: Running) -> None:
    await seed(erp.client)
    naive = await erp.client.post("/api/v1/activities", json={**MEETING, "start": "2030-03-04T09:00:00"})
    assert naive.status_code == 422 and naive.json()["detail"][0]["loc"][-1] == "start"
    typo = await erp.client.post("/api/v1/activities", json={**MEETING, "subjet": "x"})
    assert typo.status_code == 422
    backwards = await erp.client.post("/api/v1/activities", json={**MEETING, "end": "2030-03-04T08:00:00Z"})
    assert backwards.status_code == 422 and "ends before it starts" in backwards.json()["detail"]["message"]
    bad_if_match = await erp.client.put("/api/v1/partners/ACME", json={"name": "A"}, headers={"If-Match": "abc"})
    assert bad_if_match.status_code == 400
