"""Imported from Outlook (R27): the ERP activities created from Outlook, as X3's sync data view and PX's
imported-activities list show them: start date, start time, duration, subject, location, comment,
last update, user code."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel

from sync_core.domain.notes import html_to_text
from sync_core.operations.erp_admin import erp_admin
from sync_core.operations.errors import Invalid
from sync_core.state import as_utc

if TYPE_CHECKING:
    from sync_core.app import Runtime

COMMENT_CHARS = 300


class ImportedActivity(BaseModel):
    id: int
    kind: str
    chrono: str | None
    # Start date and time in `timezone` (the ERP stores UTC); `start` is the UTC instant.
    start: datetime | None
    start_date: str | None
    start_time: str | None
    all_day: bool
    duration_minutes: int | None
    subject: str
    location: str | None
    comment: str | None
    last_update: datetime
    user_code: str


class ImportedPage(BaseModel):
    items: list[ImportedActivity]
    total: int
    limit: int
    offset: int
    timezone: str


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return as_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unknown time zone {name!r}: use an IANA name such as Europe/Lisbon") from None


def imported_row(a: dict[str, Any], tz: ZoneInfo) -> ImportedActivity:
    start, end = _time(a.get("start")), _time(a.get("end"))
    all_day = bool(a.get("all_day"))
    if a.get("kind") == "meeting":
        duration = int((end - start).total_seconds() // 60) if start and end and end >= start else None
    else:
        # Tasks and calls: the time spent / call duration (X3 "actual work").
        duration = a.get("time_spent_minutes")
    local = start.astimezone(tz) if start and not all_day else start
    notes = html_to_text(str(a["notes"])) if a.get("notes") else None
    comment = " ".join(notes.split()) if notes else None
    return ImportedActivity(
        id=int(a["id"]),
        kind=str(a.get("kind")),
        chrono=a.get("chrono"),
        start=start,
        start_date=local.date().isoformat() if local else None,
        start_time=None if all_day or local is None else local.strftime("%H:%M"),
        all_day=all_day,
        duration_minutes=duration,
        subject=str(a.get("subject") or ""),
        location=a.get("location") or None,
        comment=(comment[:COMMENT_CHARS] + "…") if comment and len(comment) > COMMENT_CHARS else comment,
        last_update=_time(a.get("updated_at")) or datetime.min,
        user_code=str(a.get("representative") or ""),
    )


async def imported(
    rt: Runtime,
    *,
    user: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
    timezone: str | None = None,
) -> ImportedPage:
    """One page of activities with origin `outlook`, newest ERP order, optionally one user's."""
    tz_name = timezone or rt.settings.console_timezone
    tz = zone(tz_name)
    async with erp_admin(rt) as erp:
        code = None
        if user:
            code = str((await erp.representative(user))["code"])
        page = await erp.page(
            "activities", origin="outlook", representative=code, kind=kind or None, limit=limit, offset=offset
        )
    return ImportedPage(
        items=[imported_row(a, tz) for a in page["items"]],
        total=int(page["total"]),
        limit=int(page["limit"]),
        offset=int(page["offset"]),
        timezone=tz_name,
    )
