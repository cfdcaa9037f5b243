"""`POST /notifications`: Graph's validation handshake, then change notifications in, bus messages out.

Graph's rules (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks):
- a request with `?validationToken=…` is answered 200, `text/plain`, with the URL-decoded token,
  before anything else (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks#notificationurl-validation);
- a notification counts only when its subscription is ours and its `clientState` is that
  subscription's secret;
- answer 2xx within 3 s, and only once the notification is stored: here, once the broker confirmed
  every message; otherwise 503 so that Graph redelivers.

Nothing here calls Graph, and nothing writes to the database per notification.
"""

from __future__ import annotations

import hmac
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry import trace

from graph_webhook.cache import KnownSubscription, SubscriptionCache
from graph_webhook.messages import graph_changed, journal_line
from graph_webhook.models import utcnow
from graph_webhook.payloads import (
    COLLECTION_JSON_SCHEMA,
    Notification,
    PayloadError,
    parse_collection,
    read_body,
)
from graph_webhook.settings import GraphWebhookSettings
from shared.envelope import Envelope
from shared.errors import BrokerUnavailable
from shared.telemetry import meter, user_hash

if TYPE_CHECKING:
    from graph_webhook.app import WebhookState
    from graph_webhook.lifecycle import LifecycleHandler
    from graph_webhook.subscriptions import Publisher

log = logging.getLogger(__name__)
_meter = meter("graph_webhook.notifications")
received = _meter.create_counter(
    "webhook_notifications", description="Notifications received, by outcome (published or why discarded)"
)
refused_posts = _meter.create_counter("webhook_posts_refused", description="Notification POSTs refused, by status")

CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
MAX_VALIDATION_TOKEN = 8192
router = APIRouter()

_ERROR: dict[str, Any] = {
    "application/json": {
        "schema": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
    }
}
# What /notifications and /lifecycle answer, for the OpenAPI document.
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Validation handshake: the decoded validationToken, as inert text/plain",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
    202: {"description": "Every notification published (or discarded: unknown subscription, wrong clientState)"},
    400: {
        "description": "Not a changeNotificationCollection, or an empty or too long validationToken",
        "content": _ERROR,
    },
    413: {"description": "Body over NOTIFICATION_MAX_BODY_BYTES", "content": _ERROR},
    503: {"description": "The broker did not confirm: Graph redelivers", "content": _ERROR},
}
OPENAPI_EXTRA: dict[str, Any] = {
    "parameters": [
        {
            "name": "validationToken",
            "in": "query",
            "required": False,
            "description": "Graph's handshake: answered first, before the body is read",
            "schema": {"type": "string"},
        }
    ],
    "requestBody": {"required": False, "content": {"application/json": {"schema": COLLECTION_JSON_SCHEMA}}},
}


def handshake(token: str) -> Response:
    """Echo the decoded validation token as inert plain text."""
    if not token or len(token) > MAX_VALIDATION_TOKEN:
        return JSONResponse({"error": "invalid validationToken"}, status_code=400)
    return Response(
        content=token,
        status_code=200,
        media_type="text/plain",
        headers={
            # Served as text whatever it contains: a browser must not sniff markup in it and run it.
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'",
            "Cache-Control": "no-store",
        },
    )


@dataclass
class Sorted:
    """A POST's notifications after validation: what to publish, lifecycle events to act on."""

    envelopes: list[Envelope] = field(default_factory=list)
    accepted: list[KnownSubscription] = field(default_factory=list)
    lifecycle: list[tuple[Notification, KnownSubscription]] = field(default_factory=list)
    # Outcomes counted per POST and added to the metric once each: cheaper than once per notification.
    outcomes: Counter[str] = field(default_factory=Counter)


class NotificationIntake:
    """Validates notifications against the cached subscriptions and publishes the valid ones."""

    def __init__(
        self,
        settings: GraphWebhookSettings,
        cache: SubscriptionCache,
        publisher: Publisher,
        lifecycle: LifecycleHandler | None = None,
        owe_resync: Callable[[Iterable[str]], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.publisher = publisher
        self.lifecycle = lifecycle
        # Told which subscriptions' notifications were refused (`SubscriptionManager.owe_resync`).
        self.owe_resync = owe_resync
        self.tenant_id = settings.graph_tenant_id.lower()

    async def accept(self, notifications: list[Notification]) -> None:
        """Publish every valid notification with confirms; raises `BrokerUnavailable` if one isn't confirmed."""
        batch = Sorted()
        for n in notifications:
            # The cache answers from memory; only an unknown id needs the (awaited) database look-up.
            sub = self.cache.peek(n.subscription_id) or await self.cache.get(n.subscription_id)
            self._sort(n, sub, batch)
        attributes: dict[str, str | int] = {"sync.notification.count": len(notifications)}
        for outcome, count in batch.outcomes.items():
            received.add(count, {"outcome": outcome})
            attributes[f"sync.notification.{outcome}"] = count
        users = {e.user for e in batch.envelopes}
        if len(users) == 1:
            attributes["sync.user_hash"] = user_hash(users.pop())
        trace.get_current_span().set_attributes(attributes)
        if batch.lifecycle and self.lifecycle is not None:
            batch.envelopes.extend(await self.lifecycle.handle(batch.lifecycle))
        if batch.envelopes:
            try:
                await self.publisher.publish_many(batch.envelopes, timeout=self.settings.publish_timeout_s)
            except BrokerUnavailable:
                await self._refused(batch)
                raise
        now = utcnow()
        for sub in batch.accepted:
            self.cache.touch(sub.id, now)

    async def _refused(self, batch: Sorted) -> None:
        """The POST is answered 503: whatever Graph does next, these subscriptions owe a resync."""
        if self.owe_resync is None:
            return
        ids = {sub.id for sub in batch.accepted} | {sub.id for _, sub in batch.lifecycle}
        if not ids:
            return
        try:
            await self.owe_resync(ids)
        except Exception as exc:  # the database too: Graph's redelivery is all that is left
            log.warning("could not note the resync owed for refused notifications: %s", exc)

    def _sort(self, n: Notification, sub: KnownSubscription | None, batch: Sorted) -> None:
        if sub is None:
            self._discard("unknown_subscription", n, batch)
            return
        # Constant-time: the secret must not leak through response timing.
        if n.client_state is None or not hmac.compare_digest(n.client_state.encode(), sub.client_state.encode()):
            self._discard("client_state_mismatch", n, batch)
            return
        if n.tenant_id and n.tenant_id.lower() != self.tenant_id:
            self._discard("foreign_tenant", n, batch)
            return
        if n.lifecycle_event is not None:
            batch.lifecycle.append((n, sub))
            return
        if self.cache.is_blocked(sub.user_email):
            batch.outcomes["user_disabled"] += 1
            batch.envelopes.append(
                journal_line(
                    tenant=self.settings.tenant,
                    user_email=sub.user_email,
                    kind=sub.kind,
                    outcome="skipped",
                    rule="R16",
                    reason="Outlook change ignored: the user is not enabled for sync (or unknown to the ERP)",
                    graph_id=n.resource_id,
                )
            )
            return
        if n.change_type not in CHANGE_TYPES:
            self._discard("unsupported_change_type", n, batch)
            return
        batch.outcomes["published"] += 1
        batch.accepted.append(sub)
        batch.envelopes.append(
            graph_changed(
                tenant=self.settings.tenant,
                user_email=sub.user_email,
                kind=sub.kind,
                graph_user_id=sub.graph_user_id,
                subscription_id=sub.id,
                change_type=n.change_type,
                resource=n.resource,
                resource_id=n.resource_id,
                list_id=sub.list_id,
                etag=n.resource_data.odata_etag if n.resource_data else None,
            )
        )

    def _discard(self, reason: str, n: Notification, batch: Sorted) -> None:
        batch.outcomes[reason] += 1
        # Never the payload nor the clientState: only which subscription it claimed to be for.
        log.warning("notification discarded: %s", reason, extra={"subscription_id": n.subscription_id[:100]})


async def respond(
    state: WebhookState, token: str | None, read: Callable[[int], Awaitable[bytes]]
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The answer to a POST of notifications, whatever serves it: status, body and headers.

    Handshake first (the body is not read), then size and schema checks, then the intake.
    """
    if token is not None:
        return _reply(handshake(token))
    try:
        body = await read(state.settings.notification_max_body_bytes)
        notifications = parse_collection(body)
    except PayloadError as exc:
        refused_posts.add(1, {"status": str(exc.status)})
        return _reply(JSONResponse({"error": exc.reason}, status_code=exc.status))
    try:
        await state.intake.accept(notifications)
    except BrokerUnavailable as exc:
        refused_posts.add(1, {"status": "503"})
        log.warning("notifications not acknowledged, Graph will redeliver: %s", exc)
        return _reply(
            JSONResponse({"error": "broker unavailable; retry later"}, status_code=503, headers={"Retry-After": "5"})
        )
    # A fresh list: a middleware may add headers to the list it is handed.
    return 202, b"", list(_ACCEPTED_HEADERS)


def _reply(response: Response) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    return response.status_code, bytes(response.body), response.raw_headers


# The headers of a 202 with an empty body, as `Response(status_code=202)` sends them; built once.
_ACCEPTED_HEADERS = tuple(Response(status_code=202).raw_headers)


async def receive(request: Request) -> Response:
    """Shared by /notifications (when not served by `NotificationsEndpoint`) and /lifecycle."""
    status, body, headers = await respond(
        request.app.state.webhook,
        request.query_params.get("validationToken"),
        lambda limit: read_body(request, limit),
    )
    response = Response(content=body, status_code=status)
    response.raw_headers = headers
    return response


@router.post("/notifications", status_code=202, responses=RESPONSES, openapi_extra=OPENAPI_EXTRA)
async def notifications(request: Request) -> Response:
    """Graph's change notifications (and its validation handshake).

    `NotificationsEndpoint` answers these POSTs before they reach FastAPI; the route stays for the
    OpenAPI document, the route name in telemetry, and any app that does not install the endpoint.
    """
    return await receive(request)
