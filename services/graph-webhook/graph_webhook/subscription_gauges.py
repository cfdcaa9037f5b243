"""Gauges of the Graph subscriptions: how many in each state, and how soon the next one expires.

Read from the database on a schedule (`shared.metrics.Sampler`), so every replica reports the same
numbers whichever one holds the subscription lease. A subscription is renewed once less than a
quarter of its life is left (about 17 h for Outlook resources): a horizon under an hour means
renewals have been failing for many hours, and notifications stop when it reaches zero.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from graph_webhook.models import Subscription
from shared.metrics import Labels, SampledGauge, labels

subscriptions = SampledGauge("webhook_subscriptions", "Graph subscriptions owned by graph-webhook, by kind and status")
expiry_horizon = SampledGauge(
    "webhook_subscription_expiry_horizon_seconds",
    "Seconds until the soonest-expiring subscription of each kind expires (negative: already expired)",
    unit="s",
)


class SubscriptionProbe:
    """Counts subscriptions by kind and status and finds each kind's earliest expiry, judged by `now`."""

    def __init__(self, engine: AsyncEngine, now: Callable[[], datetime]) -> None:
        self.sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        self.now = now

    async def sample(self) -> None:
        kind, status = col(Subscription.kind), col(Subscription.status)
        query = select(kind, status, func.count(), func.min(col(Subscription.expires_at))).group_by(kind, status)
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        now = self.now()
        counts: dict[Labels, float] = {}
        soonest: dict[str, datetime] = {}
        for row_kind, row_status, count, expires in rows:
            counts[labels(kind=row_kind, status=row_status)] = float(count)
            if expires is not None:
                expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
                soonest[row_kind] = min(expires, soonest.get(row_kind, expires))
        subscriptions.set(self, counts)
        expiry_horizon.set(self, {labels(kind=k): (when - now).total_seconds() for k, when in soonest.items()})

    def forget(self) -> None:
        subscriptions.forget(self)
        expiry_horizon.forget(self)
