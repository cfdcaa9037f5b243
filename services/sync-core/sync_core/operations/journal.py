"""The journal (R25): what happened to each item, by which rule, with the trace that finds it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, Field
from sqlmodel import col, select

from sync_core.models import JournalEntry
from sync_core.state import as_utc

if TYPE_CHECKING:
    from sync_core.app import Runtime

OUTCOMES = (
    "created",
    "updated",
    "deleted",
    "unlinked",
    "unassigned",
    "relinked",
    "moved",
    "skipped",
    "conflict",
    "failed",
    "forced",
    "audit",
)
DIRECTIONS = ("outlook_to_erp", "erp_to_outlook")


class JournalQuery(BaseModel):
    """Filters of the journal; all optional, combined with AND."""

    user: str | None = None
    kind: str | None = None
    direction: str | None = None
    outcome: str | None = None
    rule: str | None = None
    actor: str | None = None
    trace_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0)


class JournalRow(BaseModel):
    """A journal row, with a link to the trace viewer when it has a trace id."""

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
    details: dict[str, Any] | None = None
    trace_url: str | None = None


def utc(value: datetime) -> datetime:
    """An instant in UTC; a naive one is taken as UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def trace_url(template: str, trace_id: str | None) -> str | None:
    """The trace viewer's page of a trace (TRACE_URL_TEMPLATE, `{trace_id}` replaced)."""
    if not trace_id or not template:
        return None
    return template.replace("{trace_id}", quote(trace_id, safe=""))


async def search(rt: Runtime, q: JournalQuery) -> list[JournalRow]:
    """Newest first."""
    query = select(JournalEntry)
    for column, value in (
        (JournalEntry.user, q.user.lower() if q.user else None),
        (JournalEntry.kind, q.kind),
        (JournalEntry.direction, q.direction),
        (JournalEntry.outcome, q.outcome),
        (JournalEntry.rule, q.rule),
        (JournalEntry.actor, q.actor),
        (JournalEntry.trace_id, q.trace_id),
    ):
        if value:
            query = query.where(column == value)
    # In UTC: SQLite keeps the UTC wall time and ignores offsets when comparing.
    if q.since is not None:
        query = query.where(col(JournalEntry.at) >= utc(q.since))
    if q.until is not None:
        query = query.where(col(JournalEntry.at) < utc(q.until))
    query = query.order_by(col(JournalEntry.id).desc()).offset(q.offset).limit(q.limit)
    async with rt.state.sessions() as s:
        rows = (await s.exec(query)).all()
    template = rt.settings.trace_url_template
    return [
        JournalRow(
            id=r.id or 0,
            at=as_utc(r.at) or r.at,
            user=r.user,
            kind=r.kind,
            direction=r.direction,
            outcome=r.outcome,
            rule=r.rule,
            reason=r.reason,
            erp_id=r.erp_id,
            graph_id=r.graph_id,
            trace_id=r.trace_id,
            actor=r.actor,
            details=r.details,
            trace_url=trace_url(template, r.trace_id),
        )
        for r in rows
    ]
