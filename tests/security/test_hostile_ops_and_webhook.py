"""Hostile input to sync-core's ops API and graph-webhook, and what the services log meanwhile.

Already proved elsewhere: anonymous or wrong-token calls get 401 (tests/ops/test_ops_access.py);
a wrong, missing or foreign clientState, an unknown subscription and another tenant's notification
are discarded unlogged, bodies over 1 MiB are 413, a validation token with markup is echoed as inert
text/plain (tests/graph_webhook/); round trips log no e-mail or subject (tests/observability/).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from erp_connector.settings import DEMO_WEBHOOK_SECRET
from tests.observability.test_logs_privacy import every_log_record
from tests.support.system import ERP_TOKEN, OPS_TOKEN, System, eventually

SECRET_EMAIL = "mallory.private@evil.example"
SECRET_SUBJECT = "Confidential takeover of Globex"
DEEP = 100_000


@pytest.fixture
async def ops(system_in_background: System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=system_in_background.sync_url, headers={"Authorization": f"Bearer {OPS_TOKEN}"}, timeout=30
    ) as client:
        yield client


async def test_ops_api_refuses_nul_and_overflowing_numbers_with_422(ops: httpx.AsyncClient) -> None:
    """They reached the database: a 500 (PostgreSQL refuses NUL; an offset past 64 bits overflows)."""
    for path, params in (
        ("/api/v1/ops/journal", {"user": "ana\x00"}),
        ("/api/v1/ops/journal", {"offset": str(2**70)}),
        ("/api/v1/ops/imported", {"offset": str(2**70)}),
        ("/api/v1/ops/anomalies", {"type": "\x00"}),
        ("/api/v1/ops/users/REP%0001", {}),
        ("/api/v1/ops/subscriptions", {"user": "\x00"}),
    ):
        r = await ops.get(path, params=params)
        assert r.status_code == 422, (path, params, r.text)
    r = await ops.post(f"/api/v1/ops/anomalies/{2**70}/repair", json={})
    assert r.status_code == 422


async def test_unknown_users_and_sql_looking_references_are_404(ops: httpx.AsyncClient) -> None:
    for ref in ("NOBODY", "nobody@contoso.example", "' OR '1'='1", "REP01'; DROP TABLE journal; --", "<b>x</b>"):
        r = await ops.get(f"/api/v1/ops/users/{quote(ref, safe='')}")
        assert r.status_code == 404, (ref, r.text)
        r = await ops.post(f"/api/v1/ops/users/{quote(ref, safe='')}/force", json={"direction": "erp_to_outlook"})
        assert r.status_code == 404, (ref, r.text)
        r = await ops.get("/api/v1/ops/journal", params={"user": ref, "rule": ref, "actor": ref})
        assert r.status_code == 200 and r.json() == [], ref
    assert (await ops.get("/api/v1/ops/users/REP01")).status_code == 200, "the tables are all still there"


async def test_ops_api_bodies_not_json_or_nested_too_deeply_are_a_4xx(ops: httpx.AsyncClient) -> None:
    headers = {"content-type": "application/json"}
    for body in (b"\xff\xfe", b"{", b"[" * DEEP + b"]" * DEEP, b'{"direction": "erp_to_outlook", "since": "\x00"}'):
        r = await ops.post("/api/v1/ops/users/REP01/force", content=body, headers=headers)
        assert 400 <= r.status_code < 500, (body[:20], r.text)
    r = await ops.patch("/api/v1/ops/users/REP01", json={"window_days_back": 2**70})
    assert r.status_code == 422, r.text


async def test_graph_webhook_refuses_nested_or_malformed_bodies_with_400(system_in_background: System) -> None:
    async with httpx.AsyncClient(base_url=system_in_background.webhook_url) as http:
        for body in (
            b"[" * DEEP + b"]" * DEEP,
            b'{"value": [{"subscriptionId": "s", "resourceData": ' + b"[" * DEEP + b"]" * DEEP + b"}]}",
            b'{"value": "\\u0000"}',
            b"\xff\xfe\x00",
        ):
            r = await http.post("/notifications", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400 and r.json()["error"], (body[:30], r.text)
        for token in ("", "x" * 8193):
            r = await http.post(f"/notifications?validationToken={token}")
            assert r.status_code == 400


def as_text(record: logging.LogRecord) -> str:
    extra = {k: v for k, v in vars(record).items() if k not in logging.LogRecord("", 0, "", 0, "", None, None).__dict__}
    return f"{record.name} {record.getMessage()} {extra} {record.exc_text or ''}"


async def test_no_email_or_subject_in_info_logs_while_handling_hostile_input(system_in_background: System) -> None:
    """Refusals, failed logins, unknown users and a synced subject: nothing personal above debug."""
    system = system_in_background
    with every_log_record() as pairs:
        async with (
            httpx.AsyncClient(base_url=system.erp_url, headers={"Authorization": f"Bearer {ERP_TOKEN}"}) as erp,
            httpx.AsyncClient(base_url=system.sync_url, headers={"Authorization": f"Bearer {OPS_TOKEN}"}) as ops,
            httpx.AsyncClient(base_url=system.webhook_url) as webhook,
            httpx.AsyncClient(base_url=system.sync_url) as console,
        ):
            r = await erp.post(
                "/api/v1/representatives", json={"code": "bad code!", "name": "M", "email": SECRET_EMAIL}
            )
            assert r.status_code == 422
            r = await erp.post(
                "/api/v1/representatives", json={"code": "MAL01", "name": "Mallory", "email": SECRET_EMAIL}
            )
            assert r.status_code == 201, r.text
            assert (await ops.get(f"/api/v1/ops/users/{SECRET_EMAIL}")).status_code == 200
            assert (await ops.get("/api/v1/ops/users/nobody.private@evil.example")).status_code == 404
            r = await ops.post(f"/api/v1/ops/users/{SECRET_EMAIL}/enable")
            assert r.status_code == 422, "no sales role (R13)"
            page = await console.get("/admin/login")
            nonce = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            r = await console.post(
                "/admin/login", data={"username": SECRET_EMAIL, "password": "guess", "csrf_token": nonce}
            )
            assert r.status_code == 401
            note = {
                "subscriptionId": "not-ours",
                "clientState": SECRET_EMAIL,
                "changeType": "created",
                "resource": f"Users/{SECRET_EMAIL}/Events/AAA",
            }
            assert (await webhook.post("/notifications", json={"value": [note]})).status_code == 202
            body = json.dumps(
                {
                    "id": "evt-log",
                    "type": "activity.created",
                    "occurred_at": "2030-01-07T09:00:00Z",
                    "representative": "NOBODY",
                    "kind": "meeting",
                    "erp_id": 1,
                    "data": {"subject": SECRET_SUBJECT, "organizer": SECRET_EMAIL},
                }
            )
            at = datetime.now(UTC)
            headers = {
                "webhook-id": "msg_log",
                "webhook-timestamp": str(int(at.timestamp())),
                "webhook-signature": Webhook(DEMO_WEBHOOK_SECRET).sign("msg_log", at, body),
                "content-type": "application/json",
            }
            assert (await erp.post("/erp/events", content=body, headers=headers)).status_code == 422
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=40)
            r = await erp.post(
                "/api/v1/activities",
                json={
                    "kind": "meeting",
                    "subject": SECRET_SUBJECT,
                    "start": start.isoformat(),
                    "end": (start + timedelta(hours=1)).isoformat(),
                    "representative": "REP01",
                },
            )
            assert r.status_code == 201, r.text

            async def mirrored() -> bool:
                return any(e["data"].get("subject") == SECRET_SUBJECT for e in await system.sim_items("events"))

            await eventually(mirrored)
    lines = [as_text(r) for r, _ in pairs if r.levelno >= logging.INFO]
    assert lines, "the capture saw the services' logs"
    secrets = (SECRET_EMAIL, SECRET_EMAIL.split("@")[0], SECRET_SUBJECT, "Globex")
    leaks = [line for line in lines if any(s.lower() in line.lower() for s in secrets)]
    assert not leaks, "personal data above debug level:\n" + "\n".join(leaks[:10])
