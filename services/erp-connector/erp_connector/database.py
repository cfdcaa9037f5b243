"""The connector's database: engine, sessions, and one rule for writes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import Transactions, create_engine, ping, session_factory

T = TypeVar("T")


class Database:
    """Engine and sessions of one database URL (SQLite or PostgreSQL)."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self.sessions = session_factory(self.engine)
        # Units of work; on SQLite whole on a thread (ADR 0028). SQLite has one writer per file; a
        # transaction that read first and then writes fails at once (SQLITE_BUSY_SNAPSHOT) instead
        # of waiting, so this process's writers take turns on `transactions.write_lock`.
        self.transactions = Transactions(self.sessions)
        self.sqlite = self.transactions.sqlite

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A transaction that commits when the block ends and rolls back if it raises."""
        async with self.transactions.writing() as session:
            yield session

    async def run_read(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        return await self.transactions.read(fn)

    async def run_write(self, fn: Callable[[Any], Awaitable[T]], *, keyed: bool = False) -> T:
        """`keyed`: a few rows by key (one record and its outbox row), which may run in place (ADR 0058)."""
        if keyed:
            return await self.transactions.write_keyed(fn)
        return await self.transactions.write(fn)

    async def ping(self) -> None:
        await ping(self.engine)

    async def dispose(self) -> None:
        self.transactions.close()
        await self.engine.dispose()
