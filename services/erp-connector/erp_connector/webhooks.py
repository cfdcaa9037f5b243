"""`POST /erp/events`: change events from an ERP that keeps its own database (Standard Webhooks).

Order of the checks: size (413), signature and timestamp (401), replayed `webhook-id` (200, not
processed again), schema (422). An accepted event is published to the bus with a confirm before
the 202, so a 202 means the event cannot be lost; a broker outage answers 503 and the ERP retries.
"""

from __future__ import annotations

import binascii
import json
import logging
import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field, ValidationError, field_validator, model_validator
from sqlalchemy.exc import IntegrityError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from erp_connector.broker import publish_confirmed
from erp_connector.errors import ErpError
from erp_connector.models import ActivityKind, WebhookSeen
from erp_connector.schemas import refuse_nul
from erp_connector.settings import ErpConnectorSettings
from erp_connector.store import BUS_KIND
from erp_connector.unit_of_work import UnitOfWork
from shared.bus import Bus
from shared.envelope import Envelope, Kind, MessageType
from shared.errors import BrokerUnavailable
from shared.telemetry import meter

log = logging.getLogger(__name__)
router = APIRouter(tags=["erp events"])
_meter = meter("erp_connector.webhooks")
received = _meter.create_counter("erp_webhooks_received", description="ERP webhook deliveries, by outcome")

# Ids of webhook events become envelope ids through this namespace, so an event delivered twice
# (even under two webhook-ids) is one message for the consumers' dedupe.
EVENT_NAMESPACE = uuid.UUID("5b0f7c8e-2d1a-4c3b-9e8f-7a6d5c4b3a21")

EventType = Literal[
    "activity.created",
    "activity.updated",
    "activity.deleted",
    "contact.created",
    "contact.updated",
    "contact.deleted",
    "partner.created",
    "partner.updated",
    "partner.deleted",
]


class ErpEvent(BaseModel):
    """The body of an ERP event."""

    id: str = Field(min_length=1, max_length=200)
    type: EventType
    occurred_at: AwareDatetime
    representative: str | None = Field(default=None, max_length=20)
    previous_representative: str | None = Field(default=None, max_length=20)
    kind: Literal["meeting", "task", "call", "contact", "partner"] | None = None
    erp_id: str = Field(min_length=1, max_length=100)
    version: int | None = None
    data: dict[str, Any] | None = None

    # The representatives' codes are looked up in the database, which holds no NUL character.
    _no_nul = field_validator("id", "representative", "previous_representative", "erp_id")(refuse_nul)

    @model_validator(mode="before")
    @classmethod
    def _erp_id_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("erp_id"), int):
            value = {**value, "erp_id": str(value["erp_id"])}
        return value

    @model_validator(mode="after")
    def _kind_matches_type(self) -> ErpEvent:
        entity = self.type.split(".")[0]
        if entity == "activity" and self.kind not in ("meeting", "task", "call"):
            raise ValueError("an activity event needs kind meeting, task or call")
        if entity == "contact" and self.kind not in (None, "contact"):
            raise ValueError("a contact event has kind contact")
        if entity in ("activity", "contact") and not self.representative:
            raise ValueError(f"a {entity} event names its representative (whose mailbox it concerns)")
        return self

    @property
    def change(self) -> str:
        return self.type.split(".")[1]

    @property
    def bus_kind(self) -> Kind | None:
        if self.type.startswith("activity."):
            return BUS_KIND[ActivityKind(self.kind or "")]
        return Kind.CONTACT if self.type.startswith("contact.") else None


def _problem(status_code: int, code: str, message: str, **extra: Any) -> HTTPException:
    return HTTPException(status_code, detail={"code": code, "message": message, **extra})


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it grows past `limit`."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _problem(413, "too_large", f"an ERP event body is at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _problem(413, "too_large", f"an ERP event body is at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _verify(webhook: Webhook, body: bytes, request: Request) -> str:
    """Check signature and timestamp (±5 min); return the webhook id."""
    headers = {k: request.headers.get(k, "") for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    try:
        webhook.verify(body, headers, json_parse=False)
    except WebhookVerificationError as exc:
        raise _problem(401, "bad_signature", f"webhook refused: {exc}") from exc
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        # Malformed signature header (no "v1,") or base64, or a body that is not UTF-8.
        raise _problem(401, "bad_signature", "webhook refused: malformed signature or body") from exc
    return headers["webhook-id"]


async def _already_seen(uow: UnitOfWork, webhook_id: str) -> bool:
    async with uow.db.read() as session:
        return await session.get(WebhookSeen, webhook_id) is not None


async def _remember(uow: UnitOfWork, webhook_id: str) -> None:
    try:
        async with uow.db.write() as session:
            session.add(WebhookSeen(webhook_id=webhook_id))
    except IntegrityError:
        pass  # a concurrent delivery of the same webhook got there first


def _parse(body: bytes) -> ErpEvent:
    try:
        return ErpEvent.model_validate(json.loads(body))
    except json.JSONDecodeError as exc:
        raise _problem(422, "invalid_json", f"the body is not JSON: {exc.msg} at {exc.pos}") from exc
    except RecursionError as exc:
        raise _problem(422, "invalid_json", "the body is not JSON this service reads: nested too deeply") from exc
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)]
        raise _problem(422, "invalid_event", "the event does not match the schema", errors=errors) from exc


@router.post("/erp/events", status_code=202, responses={401: {}, 413: {}, 422: {}, 503: {}})
async def erp_events(request: Request) -> JSONResponse:
    """Accept one signed ERP event and publish it as `erp.changed` before answering 202."""
    settings: ErpConnectorSettings = request.app.state.settings
    webhook: Webhook = request.app.state.webhook
    uow: UnitOfWork = request.app.state.uow
    bus: Bus = request.app.state.bus
    body = await _body(request, settings.erp_webhook_max_body_bytes)
    try:
        webhook_id = _verify(webhook, body, request)
    except HTTPException:
        received.add(1, {"outcome": "unauthorized"})
        raise
    if await _already_seen(uow, webhook_id):
        received.add(1, {"outcome": "replayed"})
        return JSONResponse({"status": "duplicate", "webhook_id": webhook_id}, status_code=200)
    event = _parse(body)
    message_id = uuid.uuid5(EVENT_NAMESPACE, f"{settings.tenant}:{event.id}")
    if event.bus_kind is not None:
        await _publish(event, message_id, uow, bus, settings)
    else:
        # No Outlook item mirrors a business partner: the event is acknowledged, not relayed.
        log.info("partner event acknowledged, nothing to sync", extra={"event_type": event.type})
    await _remember(uow, webhook_id)
    received.add(1, {"outcome": "accepted"})
    return JSONResponse({"status": "accepted", "message_id": str(message_id)}, status_code=202)


async def _publish(
    event: ErpEvent, message_id: uuid.UUID, uow: UnitOfWork, bus: Bus, settings: ErpConnectorSettings
) -> None:
    assert event.representative is not None
    code = event.representative
    try:
        rep = await uow.read(lambda erp: erp.get_representative(code))
    except ErpError as exc:
        raise _problem(422, "unknown_representative", f"representative {code} is unknown to the connector") from exc
    payload: dict[str, Any] = {
        "erp_id": event.erp_id,
        "change": event.change,
        "version": event.version,
        "origin": "erp",
        "representative": rep.code,
        "event_id": event.id,
    }
    if event.previous_representative:
        payload["previous_representative"] = event.previous_representative
    if event.data is not None:
        payload["data"] = event.data
    users = [(message_id, rep.email)]
    if event.previous_representative and event.previous_representative != rep.code:
        # Reassigned (R32): the previous owner's mailbox must drop its mirror, so it hears too.
        previous = event.previous_representative
        try:
            old = await uow.read(lambda erp: erp.get_representative(previous))
            users.append((uuid.uuid5(message_id, "previous"), old.email))
        except ErpError:
            log.warning("ERP event names an unknown previous representative", extra={"event_type": event.type})
    occurred: datetime = event.occurred_at
    envelopes = [
        Envelope(
            id=envelope_id,
            type=MessageType.ERP_CHANGED,
            tenant=settings.tenant,
            user=email.lower(),
            kind=event.bus_kind,
            occurred_at=occurred,
            payload=payload,
        )
        for envelope_id, email in users
    ]
    try:
        await publish_confirmed(bus, *envelopes)
    except BrokerUnavailable as exc:
        received.add(1, {"outcome": "broker_unavailable"})
        log.warning("ERP event not accepted: broker unavailable", extra={"error": str(exc)[:200]})
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail={"code": "broker_unavailable", "message": "the message broker is unavailable; retry later"},
            headers={"Retry-After": "5"},
        ) from exc
