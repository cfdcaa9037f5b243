"""The subscriptions graph-webhook owns, held in memory for the notification path.

A notification is checked against this cache, never against the database row by row: the cache is
loaded at start, updated by the subscription manager when it changes a subscription, reloaded
periodically (other replicas may have changed subscriptions), and asked of the database only for
an id it doesn't know (at most once per id every `miss_ttl_s`, and at most `lookups_per_s` a second,
so a flood of forged ids can't turn into a flood of queries). Last-notification times are gathered
here and written in batches.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from graph_webhook.models import Subscription
from shared.envelope import Kind

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KnownSubscription:
    """What the notification path needs to know of one subscription."""

    id: str
    user_email: str
    graph_user_id: str
    kind: Kind
    list_id: str | None
    client_state: str

    @classmethod
    def of(cls, row: Subscription) -> KnownSubscription:
        return cls(row.id, row.user_email, row.graph_user_id, Kind(row.kind), row.list_id, row.client_state)


class SubscriptionCache:
    """Subscriptions by id, users whose notifications must be refused, pending last-notification times."""

    def __init__(self, engine: AsyncEngine, *, miss_ttl_s: float = 10.0, lookups_per_s: int = 20) -> None:
        self.sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        self.miss_ttl_s = miss_ttl_s
        # Database look-ups for unknown ids, per second: forged ids can't turn into a query flood.
        self.lookups_per_s = lookups_per_s
        self._tokens = float(lookups_per_s)
        self._refilled = time.monotonic()
        self._by_id: dict[str, KnownSubscription] = {}
        self._misses: dict[str, float] = {}
        self._blocked: set[str] = set()
        self._seen: dict[str, datetime] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    async def load(self) -> None:
        """Replace the cache with the database's rows."""
        async with self.sessions() as session:
            rows = (await session.exec(select(Subscription))).scalars().all()  # type: ignore[call-overload]
        self._by_id = {row.id: KnownSubscription.of(row) for row in rows}
        self._misses.clear()

    def put(self, row: Subscription) -> None:
        self._by_id[row.id] = KnownSubscription.of(row)
        self._misses.pop(row.id, None)

    def drop(self, subscription_id: str) -> None:
        self._by_id.pop(subscription_id, None)
        self._seen.pop(subscription_id, None)

    def peek(self, subscription_id: str) -> KnownSubscription | None:
        return self._by_id.get(subscription_id)

    async def get(self, subscription_id: str) -> KnownSubscription | None:
        """The subscription, from memory, else from the database (rate-limited per unknown id)."""
        known = self._by_id.get(subscription_id)
        if known is not None:
            return known
        now = time.monotonic()
        if self._misses.get(subscription_id, 0.0) > now:
            return None
        self._tokens = min(float(self.lookups_per_s), self._tokens + (now - self._refilled) * self.lookups_per_s)
        self._refilled = now
        if self._tokens < 1.0:
            return None
        self._tokens -= 1.0
        async with self.sessions() as session:
            row = await session.get(Subscription, subscription_id)
        if row is None:
            if len(self._misses) > 10_000:
                self._misses = {k: v for k, v in self._misses.items() if v > now}
            self._misses[subscription_id] = now + self.miss_ttl_s
            return None
        self.put(row)
        return self._by_id[subscription_id]

    def block_user(self, email: str) -> None:
        """Refuse this user's notifications from now on (switched off, or gone from the ERP)."""
        self._blocked.add(email.lower())

    def unblock_user(self, email: str) -> None:
        self._blocked.discard(email.lower())

    def set_blocked(self, emails: set[str]) -> None:
        self._blocked = {e.lower() for e in emails}

    def is_blocked(self, email: str) -> bool:
        return email in self._blocked

    def touch(self, subscription_id: str, when: datetime) -> None:
        """Remember a notification's arrival; written by the next `flush`."""
        self._seen[subscription_id] = when

    async def flush(self) -> int:
        """Write the gathered last-notification times in one batch; returns how many."""
        if not self._seen:
            return 0
        seen, self._seen = self._seen, {}
        params = [{"id": sid, "last_notification_at": when} for sid, when in seen.items() if sid in self._by_id]
        if not params:
            return 0
        try:
            async with self.sessions() as session:
                await session.exec(update(Subscription), params=params)  # type: ignore[call-overload]
                await session.commit()
        except Exception:
            # Put them back for the next flush, unless newer times arrived meanwhile.
            for sid, when in seen.items():
                self._seen.setdefault(sid, when)
            raise
        return len(params)
