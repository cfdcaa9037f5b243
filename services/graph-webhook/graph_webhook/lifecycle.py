"""`POST /lifecycle`: Graph's lifecycle notifications (https://learn.microsoft.com/graph/change-notifications-lifecycle-events).

- `missed`: some change notifications were not delivered; a `graph.resync` (confirmed before the
  202) makes sync-core's delta find them.
- `subscriptionRemoved`: the row is marked removed (durably, before the 202), and the subscription
  manager recreates it and then publishes `graph.resync` for the gap.
- `reauthorizationRequired`: the row is marked, and the manager renews it (PATCH expiry), which
  also reauthorizes it, then publishes `graph.resync` in case delivery paused.

Graph is never called on this request path: the manager does that work in the background.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from graph_webhook.cache import KnownSubscription
from graph_webhook.messages import ResyncReason, graph_resync
from graph_webhook.models import SubscriptionStatus
from graph_webhook.notifications import receive
from graph_webhook.payloads import Notification
from graph_webhook.settings import GraphWebhookSettings
from graph_webhook.subscriptions import SubscriptionManager
from shared.envelope import Envelope
from shared.telemetry import meter

log = logging.getLogger(__name__)
_meter = meter("graph_webhook.lifecycle")
lifecycle_events = _meter.create_counter("webhook_lifecycle_events", description="Lifecycle notifications, by event")

MISSED = "missed"
REMOVED = "subscriptionRemoved"
REAUTHORIZATION_REQUIRED = "reauthorizationRequired"
router = APIRouter()


class LifecycleHandler:
    """Turns validated lifecycle notifications into marks on the rows and resync messages."""

    def __init__(self, settings: GraphWebhookSettings, manager: SubscriptionManager | None) -> None:
        self.settings = settings
        self.manager = manager

    async def handle(self, items: list[tuple[Notification, KnownSubscription]]) -> list[Envelope]:
        """Mark rows for the manager; return the messages to publish before answering."""
        envelopes: list[Envelope] = []
        for n, sub in items:
            event = n.lifecycle_event or ""
            lifecycle_events.add(
                1, {"event": event if event in (MISSED, REMOVED, REAUTHORIZATION_REQUIRED) else "other"}
            )
            log.info("lifecycle notification", extra={"event": event, "subscription_id": sub.id, "kind": sub.kind})
            if event == MISSED:
                envelopes.append(
                    graph_resync(
                        tenant=self.settings.tenant,
                        user_email=sub.user_email,
                        kind=sub.kind,
                        graph_user_id=sub.graph_user_id,
                        reason=ResyncReason.MISSED,
                        list_id=sub.list_id,
                    )
                )
            elif event == REMOVED and self.manager is not None:
                await self.manager.mark(sub.id, SubscriptionStatus.REMOVED)
            elif event == REAUTHORIZATION_REQUIRED and self.manager is not None:
                await self.manager.mark(sub.id, SubscriptionStatus.REAUTHORIZE)
            elif event not in (MISSED, REMOVED, REAUTHORIZATION_REQUIRED):
                log.warning("unknown lifecycle event ignored", extra={"event": event[:50]})
        return envelopes


@router.post("/lifecycle", status_code=202)
async def lifecycle(request: Request) -> Response:
    """Graph's lifecycle notifications (and the validation handshake of the lifecycle URL)."""
    return await receive(request)
