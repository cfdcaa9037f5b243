"""Graph subscriptions as graph-webhook holds them (expiry, last notification), and asking it to renew them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import httpx
from pydantic import BaseModel

from shared.envelope import Envelope, MessageType
from shared.errors import BrokerUnavailable
from sync_core.operations.audit import audit
from sync_core.operations.erp_admin import erp_admin
from sync_core.operations.errors import Unavailable

if TYPE_CHECKING:
    from sync_core.app import Runtime


class SubscriptionInfo(BaseModel):
    """One Graph subscription of one user's collection (graph-webhook's `GET /api/v1/subscriptions`)."""

    id: str
    user: str
    kind: str
    status: str
    expires_at: datetime
    last_notification_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    renewed_at: datetime | None = None


async def subscriptions(rt: Runtime, user: str | None = None) -> list[SubscriptionInfo]:
    """Every subscription graph-webhook keeps (or one user's); `Unavailable` when it doesn't answer."""
    s = rt.settings
    params = {"user": user.lower()} if user else None
    try:
        async with httpx.AsyncClient(timeout=s.ops_timeout_s) as http:
            resp = await http.get(
                f"{s.graph_webhook_url.rstrip('/')}/api/v1/subscriptions",
                params=params,
                headers={"Authorization": f"Bearer {s.ops_api_token.get_secret_value()}"},
            )
    except httpx.HTTPError as exc:
        raise Unavailable(f"graph-webhook not reachable at {s.graph_webhook_url}: {type(exc).__name__}") from exc
    if resp.status_code != 200:
        raise Unavailable(f"graph-webhook answered {resp.status_code} to GET /api/v1/subscriptions")
    return [SubscriptionInfo.model_validate(x) for x in resp.json()]


class RenewRequest(BaseModel):
    user: str
    code: str
    message_id: str
    requested_by: str


async def renew(rt: Runtime, ref: str, *, actor: str) -> RenewRequest:
    """Ask graph-webhook to reconcile this user's subscriptions now (`user.changed` on the bus):
    missing ones are created, removed or failed ones recreated, those near expiry renewed."""
    async with erp_admin(rt) as erp:
        rep = await erp.representative(ref)
    email = str(rep["email"]).lower()
    env = Envelope(
        type=MessageType.USER_CHANGED,
        tenant=rt.settings.tenant,
        user=email,
        payload={"code": rep["code"], "email": email, "reason": "renew requested", "requested_by": actor},
    )
    try:
        await rt.bus.publish(env)
    except BrokerUnavailable as exc:
        raise Unavailable(f"broker: {exc}") from exc
    await audit(
        rt,
        actor=actor,
        action="subscriptions.renew",
        user=email,
        reason="asked graph-webhook to renew this user's subscriptions",
    )
    return RenewRequest(user=email, code=str(rep["code"]), message_id=str(env.id), requested_by=actor)
