"""The webhook's own tables: the Graph subscriptions it owns and the lease that lets one replica manage them.

`WebhookBase` has its own registry, so these tables live in their own metadata and are migrated
with their own Alembic version table (`alembic_version_webhook`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.db import UTCDateTime
from shared.envelope import utcnow


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
