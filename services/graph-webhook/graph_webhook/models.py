"""The webhook's own tables: the Graph subscriptions it owns and the lease that lets one replica manage them.

`WebhookBase` has its own registry, so these tables live in their own metadata and are migrated
with their own Alembic version table (`alembic_version_webhook`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import DateTime, TypeDecorator, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back time-zone aware (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    # Graph asked for reauthorization: renew at the next check.
    REAUTHORIZE = "reauthorize"
    # Graph removed it (lifecycle `subscriptionRemoved`): recreate, then resync.
    REMOVED = "removed"
    # Renewal and recreation both failed; retried at each check and reported (R35).
    FAILED = "failed"


class WebhookBase(SQLModel, registry=registry()):
    pass


class Subscription(WebhookBase, table=True):
    """One Graph subscription we created: one per (user, collection)."""

    __tablename__ = "webhook_subscription"
    __table_args__ = (UniqueConstraint("user_email", "kind", name="uq_webhook_subscription_user_kind"),)

    id: str = Field(primary_key=True, max_length=200)
    user_email: str = Field(index=True, max_length=320)
    graph_user_id: str = Field(max_length=200)
    # `event`, `contact` or `task` (the To Do list, which holds tasks and calls).
    kind: str = Field(max_length=20)
    resource: str = Field(max_length=500)
    list_id: str | None = Field(default=None, max_length=300)
    client_state: str = Field(max_length=128)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default=SubscriptionStatus.ACTIVE.value, max_length=20)
    last_error: str | None = Field(default=None, max_length=500)
    # Reason of a `graph.resync` still to publish after a gap (set with the new subscription, cleared
    # once the broker confirmed it), so a broker outage cannot swallow it.
    resync_reason: str | None = Field(default=None, max_length=50)
    last_notification_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    renewed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Lease(WebhookBase, table=True):
    """A named, expiring lock row: whoever holds `subscriptions` may change Graph subscriptions."""

    __tablename__ = "webhook_lease"

    name: str = Field(primary_key=True, max_length=50)
    owner: str = Field(default="", max_length=200)
    expires_at: datetime = Field(sa_type=UTCDateTime)
