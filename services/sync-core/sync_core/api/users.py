"""`/api/v1/ops/users…`: switches (R16), sync times (R23), health (R35), test connection (R28),
force sync (R24) and reconciliation (R26) of one user. `{user}` is a representative code or a
mailbox address."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from sync_core.api.deps import Operator, RuntimeDep
from sync_core.api.schemas import ERRORS, ReconcileRunPublic
from sync_core.operations import connection, force, users
from sync_core.operations.connection import ConnectionReport
from sync_core.operations.force import ForceAccepted, ForceProgress, ForceRequest
from sync_core.operations.users import UserOverview, UserUpdate

router = APIRouter(prefix="/api/v1/ops/users", tags=["users"], responses=ERRORS)


@router.get("", response_model=list[UserOverview])
async def list_users(rt: RuntimeDep, _: Operator) -> list[UserOverview]:
    """Every representative with a mailbox: switches, conflict policy, sync window, last sync per
    direction (R23), subscriptions (expiry, last notification), health (R35)."""
    return await users.list_users(rt)


@router.get("/{user}", response_model=UserOverview)
async def get_user(user: str, rt: RuntimeDep, _: Operator) -> UserOverview:
    return await users.get_user(rt, user)


@router.patch("/{user}", response_model=UserOverview)
async def update_user(user: str, update: UserUpdate, rt: RuntimeDep, actor: Operator) -> UserOverview:
    """Change switches, conflict policy or sync window (written to the ERP, audited).

    Send `version` (from a read) to refuse the change if someone else changed the user meanwhile (409)."""
    return await users.update_user(rt, user, update, actor=actor)


@router.post("/{user}/enable", response_model=UserOverview)
async def enable_user(user: str, rt: RuntimeDep, actor: Operator) -> UserOverview:
    """Switch sync on (the ERP refuses it without a sales role, R13: 422)."""
    return await users.update_user(rt, user, UserUpdate(sync_enabled=True), actor=actor)


@router.post("/{user}/disable", response_model=UserOverview)
async def disable_user(user: str, rt: RuntimeDep, actor: Operator) -> UserOverview:
    """Switch sync off: links stay, nothing is deleted (R32)."""
    return await users.update_user(rt, user, UserUpdate(sync_enabled=False), actor=actor)


@router.post("/{user}/test-connection", response_model=ConnectionReport)
async def test_connection(user: str, rt: RuntimeDep, actor: Operator) -> ConnectionReport:
    """R28: Graph token, mailbox, subscriptions, ERP, broker — each ok or failing with its error."""
    return await connection.test_connection(rt, user, actor=actor)


@router.post("/{user}/force", response_model=ForceAccepted, status_code=202)
async def force_sync(user: str, request: ForceRequest, rt: RuntimeDep, actor: Operator) -> ForceAccepted:
    """R24: (a) `erp_to_outlook` re-sends every ERP item; (b) `outlook_to_erp` re-sends Outlook items
    modified since `since`. Accepted once the messages are on the broker; follow it with `…/force/progress`."""
    return await force.force_sync(rt, user, request, actor=actor)


@router.get("/{user}/force/progress", response_model=ForceProgress)
async def force_progress(
    user: str,
    rt: RuntimeDep,
    _: Operator,
    direction: force.Direction,
    since: datetime = Query(description="`requested_at` of the force request"),
    expected: int = Query(3, ge=1, le=3, description="How many messages it published"),
    requested_by: str | None = None,
) -> ForceProgress:
    """How far a force sync got, from the journal: items handled, collections finished."""
    overview = await users.get_user(rt, user)
    return await force.progress(
        rt, overview.email, direction=direction, since=since, expected=expected, actor=requested_by
    )


@router.post("/{user}/reconcile", response_model=ReconcileRunPublic)
async def reconcile(user: str, rt: RuntimeDep, actor: Operator) -> ReconcileRunPublic:
    """R26: compare both sides of the user now; the anomalies found replace the user's previous ones."""
    run = await rt.reconciler.reconcile(user, trigger=actor)
    return ReconcileRunPublic.model_validate(run, from_attributes=True)
