"""sync-core's state: links, delta cursors, journal, inbox, per-user state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, Index, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


def _ts(nullable: bool = True) -> Column:  # type: ignore[type-arg]
    return Column(DateTime(timezone=True), nullable=nullable)


class SyncBase(SQLModel, registry=registry()):
    """Tables of sync-core only: its metadata is separate from the other services'."""


class Link(SyncBase, table=True):
    """A Graph item and its ERP mirror, with what was last synced between them."""

    __tablename__ = "sync_link"
    __table_args__ = (
        UniqueConstraint("user", "kind", "erp_id", name="uq_sync_link_erp"),
        UniqueConstraint("user", "collection", "graph_id", name="uq_sync_link_graph"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user: str = Field(index=True)
    kind: str
    collection: str
    graph_id: str
    erp_id: str
    fingerprint: str
    graph_change_key: str | None = None
    erp_version: int | None = None
    graph_modified_at: datetime | None = Field(default=None, sa_column=_ts())
    erp_modified_at: datetime | None = Field(default=None, sa_column=_ts())
    synced_at: datetime = Field(sa_column=_ts(False))
    # A write of ours to one side that failed without telling whether it was applied (its answer
    # lost, a later step of a To Do update failed): "erp:<fingerprint>" or "outlook:<fingerprint>".
    # When that side is found holding it, it is our write, not a user's edit (ADR 0025).
    pending_write: str | None = None


class DeltaCursor(SyncBase, table=True):
    """Where the last delta round of a user's collection ended (its deltaLink)."""

    __tablename__ = "sync_delta_cursor"
    __table_args__ = (UniqueConstraint("user", "collection", name="uq_sync_delta_cursor"),)

    id: int | None = Field(default=None, primary_key=True)
    user: str
    collection: str
    delta_link: str
    updated_at: datetime = Field(sa_column=_ts(False))


class JournalEntry(SyncBase, table=True):
    """One line per item handled: what happened, by which rule, with the trace that finds it (R25)."""

    __tablename__ = "sync_journal"
    __table_args__ = (Index("ix_sync_journal_user_at", "user", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=_ts(False))
    user: str
    kind: str | None = None
    direction: str | None = None
    outcome: str = Field(index=True)
    rule: str | None = None
    reason: str | None = None
    erp_id: str | None = None
    graph_id: str | None = None
    trace_id: str | None = None
    actor: str | None = None
    details: dict | None = Field(default=None, sa_column=Column(JSON))  # type: ignore[type-arg]


class PendingCreate(SyncBase, table=True):
    """An ERP create for an Outlook item that failed without an answer (the ERP down, the answer lost):
    it may have been applied. Replayed with the same idempotency key, it finds the record again — to
    link it when the item is synced again, or to delete it when the item was deleted meanwhile (R20)."""

    __tablename__ = "sync_pending_create"
    __table_args__ = (Index("ix_sync_pending_create_item", "user", "collection", "graph_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user: str
    collection: str
    graph_id: str
    erp_collection: str
    key: str
    body: dict = Field(sa_column=Column(JSON, nullable=False))  # type: ignore[type-arg]
    created_at: datetime = Field(sa_column=_ts(False))


class InboxEntry(SyncBase, table=True):
    """Ids of messages already processed: at-least-once delivery becomes effectively once."""

    __tablename__ = "sync_inbox"

    message_id: str = Field(primary_key=True)
    processed_at: datetime = Field(sa_column=_ts(False))


class UserState(SyncBase, table=True):
    """Per user: last successful sync per direction (R23) and health (R35)."""

    __tablename__ = "sync_user_state"

    user: str = Field(primary_key=True)
    graph_user_id: str | None = None
    last_sync_outlook_to_erp: datetime | None = Field(default=None, sa_column=_ts())
    last_sync_erp_to_outlook: datetime | None = Field(default=None, sa_column=_ts())
    healthy: bool = True
    last_error: str | None = None
    last_error_at: datetime | None = Field(default=None, sa_column=_ts())


class Admin(SyncBase, table=True):
    """A person who may use the admin console; the first one comes from ADMIN_USERNAME/ADMIN_PASSWORD."""

    __tablename__ = "sync_admin"

    username: str = Field(primary_key=True, max_length=100)
    # `scrypt$n$r$p$salt$hash` (sync_core.auth), never the password itself.
    password_hash: str = Field(max_length=300)
    active: bool = True
    created_at: datetime = Field(sa_column=_ts(False))
    last_login_at: datetime | None = Field(default=None, sa_column=_ts())


class Anomaly(SyncBase, table=True):
    """A discrepancy between the two sides found by reconciliation, with its repair (R26)."""

    __tablename__ = "sync_anomaly"
    __table_args__ = (Index("ix_sync_anomaly_user_status", "user", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    user: str
    kind: str
    # missing_in_outlook, missing_in_erp, field_drift, broken_link, duplicate
    type: str = Field(index=True)
    erp_id: str | None = None
    graph_id: str | None = None
    summary: str
    details: dict | None = Field(default=None, sa_column=Column(JSON))  # type: ignore[type-arg]
    # The repairs that apply, the first being the default (sync_core.reconcile.REPAIRS).
    repairs: list | None = Field(default=None, sa_column=Column(JSON))  # type: ignore[type-arg]
    # open, repair_requested
    status: str = "open"
    detected_at: datetime = Field(sa_column=_ts(False))
    repaired_at: datetime | None = Field(default=None, sa_column=_ts())
    repaired_by: str | None = None
    repair: str | None = None


class ReconcileRun(SyncBase, table=True):
    """One reconciliation of one user: when, why, what it found (R26)."""

    __tablename__ = "sync_reconcile_run"
    __table_args__ = (Index("ix_sync_reconcile_run_user_started", "user", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    user: str
    # `schedule`, or who asked for it
    trigger: str
    started_at: datetime = Field(sa_column=_ts(False))
    finished_at: datetime | None = Field(default=None, sa_column=_ts())
    anomalies: int = 0
    error: str | None = None
