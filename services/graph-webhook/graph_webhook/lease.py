"""A database lease: at most one replica manages Graph subscriptions at a time.

Taking it is one conditional UPDATE (expired, or already ours), so it works the same on SQLite and
PostgreSQL; the row is created on first use. A holder that dies simply lets it expire.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from graph_webhook.models import Lease, utcnow


class DbLease:
    """The named lease row, taken by `owner` for `ttl_s` seconds at a time."""

    def __init__(self, engine: AsyncEngine, name: str, owner: str, ttl_s: float) -> None:
        self.sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        self.name = name
        self.owner = owner
        self.ttl = timedelta(seconds=ttl_s)

    async def acquire(self) -> bool:
        """Take (or extend) the lease; False when another owner holds an unexpired one."""
        now = utcnow()
        async with self.sessions() as session:
            result = await session.exec(  # type: ignore[call-overload]
                update(Lease)
                .where(Lease.name == self.name)  # type: ignore[arg-type]
                .where((Lease.expires_at < now) | (Lease.owner == self.owner))  # type: ignore[arg-type, operator]
                .values(owner=self.owner, expires_at=now + self.ttl)
            )
            await session.commit()
            if result.rowcount == 1:
                return True
            if await session.get(Lease, self.name) is not None:
                return False
            session.add(Lease(name=self.name, owner=self.owner, expires_at=now + self.ttl))
            try:
                await session.commit()
            except IntegrityError:  # another replica created it first, and holds it
                return False
            return True

    async def release(self) -> None:
        """Give the lease up at once (only if we still hold it)."""
        async with self.sessions() as session:
            await session.exec(  # type: ignore[call-overload]
                update(Lease)
                .where(Lease.name == self.name)  # type: ignore[arg-type]
                .where(Lease.owner == self.owner)  # type: ignore[arg-type]
                .values(owner="", expires_at=utcnow() - timedelta(seconds=1))
            )
            await session.commit()
