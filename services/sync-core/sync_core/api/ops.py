"""The ops API (`/api/v1/ops/…`): what the admin console and `syncctl` are built on.

This module keeps the first two endpoints (user state, journal); the others live beside it, one
module per resource, all under the same prefix and the same bearer token (`api/deps.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlmodel import select

from sync_core.api.deps import Operator, RuntimeDep
from sync_core.api.schemas import ERRORS, MAX_DB_INT, UtcDatetime
from sync_core.models import DeltaCursor, UserState
from sync_core.operations.journal import JournalQuery, JournalRow, search

router = APIRouter(prefix="/api/v1/ops", tags=["ops"], responses=ERRORS)


class UserStatePublic(BaseModel):
    user: str
    healthy: bool
    last_error: str | None
    last_sync_outlook_to_erp: UtcDatetime | None
    last_sync_erp_to_outlook: UtcDatetime | None
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


@router.get("/journal", response_model=list[JournalRow])
async def journal(
    rt: RuntimeDep,
    _: Operator,
    user: str | None = None,
    kind: str | None = None,
    direction: str | None = None,
    outcome: str | None = None,
    rule: str | None = None,
    actor: str | None = None,
    trace_id: str | None = None,
    since: datetime | None = Query(None, description="Rows at or after this instant (ISO 8601; naive = UTC)"),
    until: datetime | None = Query(None, description="Rows before this instant"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_DB_INT),
) -> list[JournalRow]:
    """The journal (R25), newest first, filtered by user, kind, direction, outcome, rule, actor and time.

    Each row carries the remote error (`reason` of a failed row), its `trace_id` and `trace_url`
    (TRACE_URL_TEMPLATE) to open the server-side trace."""
    return await search(
        rt,
        JournalQuery(
            user=user,
            kind=kind,
            direction=direction,
            outcome=outcome,
            rule=rule,
            actor=actor,
            trace_id=trace_id,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        ),
    )
