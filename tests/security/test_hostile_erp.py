"""Hostile input to erp-connector: its REST API (bearer ERP_API_TOKEN) and signed ERP events.

Each refusal is a 4xx with a reason, and nothing is written; text is stored verbatim, whatever it holds.
Already proved elsewhere (tests/erp_connector): missing, wrong, tampered and stale signatures (401),
a replayed webhook-id (200, not reprocessed), a body over 256 KiB (413), schema errors (422).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from erp_connector.api.responses import MAX_BODY_BYTES
from erp_connector.settings import DEMO_WEBHOOK_SECRET
from tests.security.conftest import Erp
from tests.support.system import ERP_TOKEN

HOSTILE_TEXTS = [
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert('x')>",
    "'; DROP TABLE erp_activity; --",
    "Robert'); DROP TABLE erp_representative;--",
    "' OR '1'='1",
    "%s %n %x {0} ${jndi:ldap://x} {{7*7}}",
    "Zoë Ünïcødé — 東京 · مرحبا · שלום \u202eevil\u202c",
    "zero\u200bwidth\ufeffbom and 🙂👨‍👩‍👧 e\u0301",
    "line\nbreak\ttab\r\nand \\ backslash \\u0000 as text",
]
DEEP = 100_000


@pytest.fixture
async def erp(erp_in_background: Erp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=erp_in_background.url, headers={"Authorization": f"Bearer {ERP_TOKEN}"}, timeout=30
    ) as client:
        yield client


def signed(body: bytes, msg_id: str | None = None, at: datetime | None = None) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(DEMO_WEBHOOK_SECRET).sign(msg_id, at, body.decode()),
        "content-type": "application/json",
    }


def event(**changes: Any) -> dict[str, Any]:
    return {
        "id": f"evt-{uuid.uuid4().hex[:8]}",
        "type": "activity.updated",
        "occurred_at": "2030-01-07T09:00:00Z",
        "representative": "REP01",
        "kind": "meeting",
        "erp_id": 4711,
        "version": 3,
        **changes,
    }


async def count(erp: httpx.AsyncClient, collection: str) -> int:
    r = await erp.get(f"/api/v1/{collection}", params={"include_deleted": "true", "limit": 1})
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def reason(response: httpx.Response) -> str:
    return json.dumps(response.json()["detail"])


async def test_unicode_markup_and_sql_looking_text_is_stored_verbatim(erp: httpx.AsyncClient) -> None:
    for i, text in enumerate(HOSTILE_TEXTS):
        created = await erp.post(
            "/api/v1/activities",
            json={"kind": "task", "representative": "REP01", "subject": text, "notes": text, "location": text},
        )
        assert created.status_code == 201, (text, created.text)
        read = (await erp.get(f"/api/v1/activities/{created.json()['id']}")).json()
        assert (read["subject"], read["notes"], read["location"]) == (text, text, text)
        contact = await erp.post(
            "/api/v1/contacts",
            json={"given_name": text, "surname": text[:200], "job_title": text, "emails": [f"h{i}@x.example"]},
        )
        assert contact.status_code == 201, (text, contact.text)
        assert (await erp.get(f"/api/v1/contacts/{contact.json()['id']}")).json()["given_name"] == text
    # SQL in a filter is a value to compare, never SQL: it matches nothing and the tables are all there.
    for text in HOSTILE_TEXTS:
        for collection, param in (("representatives", "email"), ("contacts", "email"), ("activities", "chrono")):
            r = await erp.get(f"/api/v1/{collection}", params={param: text})
            assert r.status_code == 200 and r.json()["items"] == [], (collection, text)
        r = await erp.get(f"/api/v1/representatives/{quote(text, safe='')}")
        assert r.status_code == 404, text
    assert (await erp.get("/api/v1/representatives/REP01")).status_code == 200
    assert await count(erp, "activities") >= len(HOSTILE_TEXTS)


async def test_nul_characters_are_refused_with_422_and_nothing_written(erp: httpx.AsyncClient) -> None:
    """PostgreSQL cannot store U+0000: it used to fail as a 500 after validation (body, query and path)."""
    before = await count(erp, "representatives"), await count(erp, "contacts"), await count(erp, "activities")
    refused = [
        await erp.post("/api/v1/representatives", json={"code": "NUL1", "name": "a\x00b", "email": "n@x.example"}),
        await erp.post("/api/v1/contacts", json={"given_name": "N", "business_phones": ["+1\x00"]}),
        await erp.post("/api/v1/activities", json={"kind": "task", "representative": "REP01", "subject": "\x00"}),
        await erp.put("/api/v1/representatives/REP01", json={"name": "Ana\x00"}),
    ]
    for r in refused:
        assert r.status_code == 422, r.text
        assert "NUL" in reason(r), r.text
    for path, params in (
        ("/api/v1/representatives", {"email": "a\x00"}),
        ("/api/v1/activities", {"chrono": "MTG\x00"}),
        ("/api/v1/representatives/REP%0001", {}),
        ("/api/v1/representatives/by-email/ana%00@contoso.example", {}),
    ):
        r = await erp.get(path, params=params)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "invalid", (path, r.text)
    after = await count(erp, "representatives"), await count(erp, "contacts"), await count(erp, "activities")
    assert after == before
    assert (await erp.get("/api/v1/representatives/REP01")).json()["name"] == "Ana Silva"


async def test_ids_and_offsets_beyond_the_database_integers_are_422(erp: httpx.AsyncClient) -> None:
    """A 64-bit-overflowing id or offset used to be a 500 (SQLite OverflowError, PostgreSQL out of range)."""
    huge = 2**70
    for path in (f"/api/v1/activities/{huge}", f"/api/v1/contacts/{huge}", f"/api/v1/contacts/{2**31}"):
        r = await erp.get(path)
        assert r.status_code == 422, (path, r.text)
    for collection in ("representatives", "partners", "contact-groups", "contacts", "activities"):
        r = await erp.get(f"/api/v1/{collection}", params={"offset": huge})
        assert r.status_code == 422 and "offset" in r.text, (collection, r.text)
    before = await count(erp, "activities")
    for field in ("contact_id", "time_spent_minutes"):
        r = await erp.post("/api/v1/activities", json={"kind": "call", "representative": "REP01", field: huge})
        assert r.status_code == 422 and field in r.text, r.text
    assert await count(erp, "activities") == before


async def test_a_body_over_the_limit_is_413_declared_or_streamed(erp: httpx.AsyncClient) -> None:
    big = json.dumps({"kind": "task", "representative": "REP01", "notes": "x" * MAX_BODY_BYTES}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    before = await count(erp, "activities")
    declared = await erp.post("/api/v1/activities", content=big, headers={"content-type": "application/json"})
    streamed = await erp.post("/api/v1/activities", content=chunks(), headers={"content-type": "application/json"})
    for r in (declared, streamed):
        assert r.status_code == 413 and r.json()["detail"]["code"] == "too_large", r.text
        assert len(r.content) < 1000, "the refusal does not echo the body"
    assert await count(erp, "activities") == before
    ok = await erp.post("/api/v1/activities", json={"kind": "task", "representative": "REP01", "notes": "x" * 99_000})
    assert ok.status_code == 201, "a record within the limits is still accepted"


async def test_deeply_nested_json_is_refused_with_a_4xx(erp: httpx.AsyncClient) -> None:
    """Nesting beyond the parser's recursion limit used to be a 500 on a DELETE body and on signed events."""
    deep = b"[" * DEEP + b"]" * DEEP
    json_headers = {"content-type": "application/json"}
    created = await erp.post("/api/v1/representatives", content=deep, headers=json_headers)
    assert created.status_code in (400, 422), created.text
    deleted = await erp.request("DELETE", "/api/v1/partners/ACME", content=deep, headers=json_headers)
    assert deleted.status_code == 200, "a body the route does not read is ignored (and recorded as text)"
    restored = await erp.post("/api/v1/partners", json={"code": "ACME2", "name": "Acme", "type": "customer"})
    assert restored.status_code == 201
    nested_data = json.dumps(event(data={"a": 1})).encode().replace(b'{"a": 1}', b"[" * DEEP + b"]" * DEEP)
    for body in (deep, nested_data):
        r = await erp.post("/erp/events", content=body, headers=signed(body))
        assert r.status_code == 422 and r.json()["detail"]["code"] == "invalid_json", r.text
        assert "nested too deeply" in r.text


async def test_forged_events_reusing_a_valid_signature_are_refused(erp: httpx.AsyncClient) -> None:
    """The signature covers webhook-id, timestamp and body: none can be swapped under it."""
    body = json.dumps(event()).encode()
    genuine = signed(body, msg_id="msg_genuine")
    other_body = json.dumps(event(representative="REP02")).encode()
    forged = [
        {**genuine, "webhook-id": "msg_another"},
        {**genuine, "webhook-timestamp": str(int(genuine["webhook-timestamp"]) + 1)},
        {**genuine, "webhook-signature": genuine["webhook-signature"].replace("v1,", "v2,")},
        {**genuine, "webhook-signature": "v1," + "A" * 44},
    ]
    for headers in forged:
        r = await erp.post("/erp/events", content=body, headers=headers)
        assert r.status_code == 401 and r.json()["detail"]["code"] == "bad_signature", headers
    r = await erp.post("/erp/events", content=other_body, headers=genuine)
    assert r.status_code == 401
    # The genuine delivery still goes through once: the forgeries did not mark its id as seen.
    assert (await erp.post("/erp/events", content=body, headers=genuine)).status_code == 202
    assert (await erp.post("/erp/events", content=body, headers=genuine)).json()["status"] == "duplicate"


async def test_signed_events_with_hostile_fields_are_422_with_the_reason(erp: httpx.AsyncClient) -> None:
    cases = [
        (event(representative="REP\x0001"), "NUL"),
        (event(representative="' OR 1=1 --"), "unknown_representative"),
        (event(representative="<script>"), "unknown_representative"),
        (event(id="x" * 201), "id"),
        (event(erp_id="9" * 101), "erp_id"),
        ({"value": [event()]}, "type"),
    ]
    for payload, why in cases:
        body = json.dumps(payload).encode()
        r = await erp.post("/erp/events", content=body, headers=signed(body))
        assert r.status_code == 422, (payload, r.text)
        assert why in r.text, (why, r.text)
