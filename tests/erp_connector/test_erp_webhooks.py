"""`POST /erp/events` (Standard Webhooks) over real HTTP and the real broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from erp_support import Running, Tap, seed, sqlite_only
from standardwebhooks.webhooks import Webhook

from erp_connector.settings import DEMO_WEBHOOK_SECRET

OTHER_SECRET = "whsec_b3RoZXItc2VjcmV0LW9mLWFub3RoZXItZXJwLTMyYg=="


def event(**changes: Any) -> dict[str, Any]:
    body = {
        "id": f"evt-{uuid.uuid4().hex[:8]}",
        "type": "activity.updated",
        "occurred_at": "2030-01-07T09:00:00Z",
        "representative": "REP01",
        "kind": "meeting",
        "erp_id": 4711,
        "version": 3,
        "data": {"subject": "Visit"},
    }
    body.update(changes)
    return body


def signed(
    body: bytes, *, msg_id: str | None = None, at: datetime | None = None, secret: str = DEMO_WEBHOOK_SECRET
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


async def post(erp: Running, body: bytes, headers: dict[str, str]) -> Any:
    return await erp.client.post("/erp/events", content=body, headers=headers)


async def test_signed_event_is_published_before_the_202(erp: Running, tap: Tap) -> None:
    await seed(erp.client)
    body = json.dumps(event()).encode()
    accepted = await post(erp, body, signed(body))
    assert accepted.status_code == 202, accepted.text
    [message] = await tap.wait_for(1, "erp.changed", timeout=2)
    assert message["id"] == accepted.json()["message_id"]
    assert message["user"] == "ana.silva@contoso.example" and message["kind"] == "event"
    payload = message["payload"]
    assert payload["erp_id"] == "4711" and payload["change"] == "updated" and payload["version"] == 3
    assert payload["origin"] == "erp" and payload["representative"] == "REP01"
    assert payload["data"] == {"subject": "Visit"}


@sqlite_only
async def test_missing_signature_header_is_401(erp: Running) -> None:
    body = json.dumps(event()).encode()
    for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        headers = signed(body)
        del headers[missing]
        refused = await post(erp, body, headers)
        assert refused.status_code == 401, missing
        assert refused.json()["detail"]["code"] == "bad_signature"


@sqlite_only
async def test_wrong_signature_is_401(erp: Running, tap: Tap) -> None:
    await seed(erp.client)
    body = json.dumps(event()).encode()
    other_secret = await post(erp, body, signed(body, secret=OTHER_SECRET))
    tampered = await post(erp, body.replace(b"Visit", b"Visir"), signed(body))
    malformed = await post(erp, body, {**signed(body), "webhook-signature": "v1,not base64!"})
    no_version = await post(erp, body, {**signed(body), "webhook-signature": "garbage"})
    assert [r.status_code for r in (other_secret, tampered, malformed, no_version)] == [401] * 4
    await asyncio.sleep(0.2)
    assert tap.bodies("erp.changed") == []


@sqlite_only
async def test_timestamp_outside_five_minutes_is_401(erp: Running) -> None:
    body = json.dumps(event()).encode()
    for skew in (timedelta(minutes=-6), timedelta(minutes=6)):
        refused = await post(erp, body, signed(body, at=datetime.now(UTC) + skew))
        assert refused.status_code == 401, skew
        assert "timestamp" in refused.json()["detail"]["message"]


async def test_replayed_webhook_id_is_answered_200_without_reprocessing(erp: Running, tap: Tap) -> None:
    await seed(erp.client)
    body = json.dumps(event()).encode()
    headers = signed(body, msg_id="msg_replayed")
    assert (await post(erp, body, headers)).status_code == 202
    replay = await post(erp, body, headers)
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    await tap.wait_for(1, "erp.changed")
    await asyncio.sleep(0.3)
    assert len(tap.bodies("erp.changed")) == 1


@sqlite_only
async def test_body_over_256_kib_is_413(erp: Running) -> None:
    body = json.dumps(event(data={"notes": "x" * (256 * 1024)})).encode()
    refused = await post(erp, body, signed(body))
    assert refused.status_code == 413 and refused.json()["detail"]["code"] == "too_large"


@sqlite_only
async def test_schema_errors_are_422_with_the_reason(erp: Running) -> None:
    cases = [
        (b"{not json", "not JSON"),
        (json.dumps(event(type="activity.exploded")).encode(), "type"),
        (json.dumps(event(occurred_at="yesterday")).encode(), "occurred_at"),
        (json.dumps(event(kind=None)).encode(), "kind meeting, task or call"),
        (json.dumps({k: v for k, v in event().items() if k != "erp_id"}).encode(), "erp_id"),
    ]
    for body, reason in cases:
        refused = await post(erp, body, signed(body))
        assert refused.status_code == 422, body
        assert reason in json.dumps(refused.json()["detail"]), body


async def test_event_for_an_unknown_representative_is_422(erp: Running) -> None:
    body = json.dumps(event(representative="NOBODY")).encode()
    refused = await post(erp, body, signed(body))
    assert refused.status_code == 422 and refused.json()["detail"]["code"] == "unknown_representative"


async def test_reassignment_event_reaches_both_mailboxes_R32(erp: Running, tap: Tap) -> None:
    await seed(erp.client)
    body = json.dumps(event(representative="REP02", previous_representative="REP01")).encode()
    assert (await post(erp, body, signed(body))).status_code == 202
    messages = await tap.wait_for(2, "erp.changed")
    assert {m["user"] for m in messages} == {"ana.silva@contoso.example", "bruno.costa@contoso.example"}
    assert len({m["id"] for m in messages}) == 2


@sqlite_only
async def test_partner_event_is_acknowledged_without_a_message(erp: Running, tap: Tap) -> None:
    body = json.dumps(event(type="partner.updated", kind=None, representative=None, erp_id="ACME")).encode()
    assert (await post(erp, body, signed(body))).status_code == 202
    await asyncio.sleep(0.3)
    assert tap.bodies("erp.changed") == []


async def test_broker_down_answers_503_and_the_retry_is_accepted(erp: Running, tap: Tap) -> None:
    await seed(erp.client)
    body = json.dumps(event()).encode()
    headers = signed(body, msg_id="msg_retry_after_outage")
    await erp.app.state.bus.close()
    down = await post(erp, body, headers)
    assert down.status_code == 503 and down.headers["retry-after"] == "5"
    await erp.app.state.bus.connect()
    retried = await post(erp, body, headers)
    assert retried.status_code == 202, "a 503 must not mark the webhook as seen"
    await tap.wait_for(1, "erp.changed")
