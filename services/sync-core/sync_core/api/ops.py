"""The ops API (`/api/v1/ops/…`): what the admin console and `syncctl` are built on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlmodel import col, select

from sync_core.api.deps import Operator, RuntimeDep
from sync_core.models import DeltaCursor, JournalEntry, UserState

router = APIRouter(prefix="/api/v1/ops", tags=["ops"])


class UserStatePublic(BaseModel):
    user: str
    healthy: bool
    last_error: str | None
    last_sync_outlook_to_erp: datetime | None
    last_sync_erp_to_outlook: datetime | None
    delta_collections: list[str]


@router.get("/users/state", response_model=list[UserStatePublic])
async def user_states(rt: RuntimeDep, _: Operator) -> list[dict[str, Any]]:
    """Per user: last successful sync per direction (R23), health (R35), delta cursors held."""
    async with rt.state.sessions() as s:
        states = (await s.exec(select(UserState))).all()
        cursors = (await s.exec(select(DeltaCursor))).all()
    held: dict[str, list[str]] = {}
    for c in cursors:
        held.setdefault(c.user, []).append(c.collection)
    users = {st.user: st for st in states}
    out = []
    for user in sorted(set(users) | set(held)):
        st = users.get(user) or UserState(user=user)
        out.append(
            {
                "user": user,
                "healthy": st.healthy,
                "last_error": st.last_error,
                "last_sync_outlook_to_erp": st.last_sync_outlook_to_erp,
                "last_sync_erp_to_outlook": st.last_sync_erp_to_outlook,
                "delta_collections": sorted(held.get(user, [])),
            }
        )
    return out


class JournalPublic(BaseModel):
    id: int
    at: datetime
    user: str
    kind: str | None
    direction: str | None
    outcome: str
    rule: str | None
    reason: str | None
    erp_id: str | None
    graph_id: str | None
    trace_id: str | None
    actor: str | None


@router.get("/journal", response_model=list[JournalPublic])
async def journal(
    rt: RuntimeDep,
    _: Operator,
    user: str | None = None,
    kind: str | None = None,
    direction: str | None = None,
    outcome: str | None = None,
    rule: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> list[JournalEntry]:
    """The journal (R25), newest first, filtered by user, kind, direction, outcome and rule."""
    query = select(JournalEntry)
    for column, value in (
        (JournalEntry.user, user),
        (JournalEntry.kind, kind),
        (JournalEntry.direction, direction),
        (JournalEntry.outcome, outcome),
        (JournalEntry.rule, rule),
    ):
        if value is not None:
            query = query.where(column == value)
    query = query.order_by(col(JournalEntry.id).desc()).offset(offset).limit(limit)
    async with rt.state.sessions() as s:
        return list((await s.exec(query)).all())
