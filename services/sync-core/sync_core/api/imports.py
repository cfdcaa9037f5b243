"""`/api/v1/ops/imported`: activities created in the ERP from Outlook (R27)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from sync_core.api.deps import Operator, RuntimeDep
from sync_core.api.schemas import ERRORS, MAX_DB_INT
from sync_core.operations.imports import ImportedPage, imported

router = APIRouter(prefix="/api/v1/ops", tags=["imported"], responses=ERRORS)


@router.get("/imported", response_model=ImportedPage)
async def imported_activities(
    rt: RuntimeDep,
    _: Operator,
    user: str | None = Query(None, description="Representative code or mailbox"),
    kind: str | None = Query(None, description="meeting, task or call"),
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_DB_INT),
    tz: str | None = Query(None, description="IANA time zone of start date/time (default CONSOLE_TIMEZONE)"),
) -> ImportedPage:
    """Start date, start time, duration, subject, location, comment, last update and user code of each
    activity imported from Outlook, one page at a time."""
    return await imported(rt, user=user, kind=kind, limit=limit, offset=offset, timezone=tz)
