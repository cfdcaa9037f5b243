"""`GET /api/v1/subscriptions`: the subscriptions this service keeps, read-only, for operators.

sync-core's console and `syncctl subscriptions list` show them (status, expiry, last notification,
last error). Bearer token: OPS_API_TOKEN. `clientState` never leaves the service.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from graph_webhook.models import Subscription

router = APIRouter(prefix="/api/v1", tags=["status"])
_bearer = HTTPBearer(auto_error=False, description="OPS_API_TOKEN")


class SubscriptionPublic(BaseModel):
    id: str
    user: str
    kind: str
    resource: str
    status: str
    expires_at: datetime
    last_notification_at: datetime | None
    last_error: str | None
    created_at: datetime
    renewed_at: datetime | None


async def _operator(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    expected = request.app.state.webhook.settings.ops_api_token.get_secret_value().encode()
    given = (credentials.credentials if credentials else "").encode()
    if not credentials or not hmac.compare_digest(given, expected):
        raise HTTPException(
            401, "a valid bearer token (OPS_API_TOKEN) is required", headers={"WWW-Authenticate": "Bearer"}
        )


@router.get("/subscriptions", response_model=list[SubscriptionPublic], dependencies=[Depends(_operator)])
async def subscriptions(request: Request, user: str | None = None) -> list[SubscriptionPublic]:
    """Every subscription (or one mailbox's), by user and kind."""
    state = request.app.state.webhook
    query = select(Subscription).order_by(Subscription.user_email, Subscription.kind)  # type: ignore[arg-type]
    if user:
        query = query.where(func.lower(Subscription.user_email) == user.strip().lower())
    sessions = async_sessionmaker(state.engine, class_=AsyncSession, expire_on_commit=False)
    async with sessions() as session:
        rows = (await session.exec(query)).scalars().all()  # type: ignore[call-overload]
    return [
        SubscriptionPublic(
            id=row.id,
            user=row.user_email,
            kind=row.kind,
            resource=row.resource,
            status=row.status,
            expires_at=row.expires_at,
            last_notification_at=row.last_notification_at,
            last_error=row.last_error,
            created_at=row.created_at,
            renewed_at=row.renewed_at,
        )
        for row in rows
    ]
