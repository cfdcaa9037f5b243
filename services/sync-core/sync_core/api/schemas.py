"""Shapes of the ops API that are not an operation's own model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel


def _utc(value: datetime) -> datetime:
    """SQLite gives back naive datetimes: they were stored in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class ErrorPublic(BaseModel):
    detail: str


class InvalidPublic(BaseModel):
    """A refusal by an ERP rule (a message), or invalid input (FastAPI's list of what is wrong where)."""

    detail: str | list[dict[str, Any]]


# The largest offset or id the database's integers hold: a larger one is a 422, not a database error.
MAX_DB_INT = 2**31 - 1

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorPublic, "description": "The body is not JSON"},
    401: {"model": ErrorPublic, "description": "No or wrong bearer token (OPS_API_TOKEN)"},
    404: {"model": ErrorPublic, "description": "Unknown user, anomaly or dead letter"},
    409: {"model": ErrorPublic, "description": "Conflicts with the current state (stale version, user not enabled)"},
    422: {"model": InvalidPublic, "description": "Invalid request, or refused by an ERP rule"},
    503: {"model": ErrorPublic, "description": "The ERP, graph-webhook, Graph or the broker did not answer"},
}


class ReconcileRunPublic(BaseModel):
    id: int
    user: str
    trigger: str
    started_at: UtcDatetime
    finished_at: UtcDatetime | None
    anomalies: int
    error: str | None


class AnomalyPublic(BaseModel):
    id: int
    user: str
    kind: str
    type: str
    erp_id: str | None
    graph_id: str | None
    summary: str
    details: dict[str, Any] | None
    repairs: list[str]
    status: str
    detected_at: UtcDatetime
    repaired_at: UtcDatetime | None
    repaired_by: str | None
    repair: str | None


class RepairRequest(BaseModel):
    # One of the anomaly's `repairs`; its first when left out.
    repair: str | None = None


class Count(BaseModel):
    count: int
