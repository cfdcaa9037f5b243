"""`/api/v1/ops/subscriptions`: Graph subscriptions as graph-webhook keeps them."""

from __future__ import annotations

from fastapi import APIRouter

from sync_core.api.deps import Operator, RuntimeDep
from sync_core.api.schemas import ERRORS
from sync_core.operations import subscriptions
from sync_core.operations.subscriptions import RenewRequest, SubscriptionInfo

router = APIRouter(prefix="/api/v1/ops/subscriptions", tags=["subscriptions"], responses=ERRORS)


@router.get("", response_model=list[SubscriptionInfo])
async def list_subscriptions(rt: RuntimeDep, _: Operator, user: str | None = None) -> list[SubscriptionInfo]:
    """Status, expiry and last notification of each subscription (from graph-webhook)."""
    return await subscriptions.subscriptions(rt, user)


@router.post("/{user}/renew", response_model=RenewRequest, status_code=202)
async def renew(user: str, rt: RuntimeDep, actor: Operator) -> RenewRequest:
    """Ask graph-webhook to reconcile the user's subscriptions now: create missing ones, recreate
    removed or failed ones, renew those near expiry."""
    return await subscriptions.renew(rt, user, actor=actor)
