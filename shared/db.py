"""Database engines from a URL: SQLite (default, file under var/) or PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, TypeDecorator, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def async_url(url: str) -> str:
    """The async-driver form of a database URL (aiosqlite, psycopg 3)."""
    u = make_url(url)
    if u.drivername in ("sqlite", "sqlite+pysqlite"):
        u = u.set(drivername="sqlite+aiosqlite")
    elif u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+asyncpg"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """The blocking-driver form of a database URL, for Alembic."""
    u = make_url(url)
    if u.drivername.startswith("sqlite"):
        u = u.set(drivername="sqlite")
    elif u.drivername.startswith("postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def ensure_sqlite_dir(url: str) -> None:
    u = make_url(url)
    if u.drivername.startswith("sqlite") and u.database and u.database != ":memory:":
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the one writer; busy_timeout waits instead of failing at once.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


# libpq's TCP settings for PostgreSQL unless the URL sets them: a connection whose peer vanished
# without a word (a failover, a firewall that forgot the flow) is found dead in about a minute instead
# of the kernel's two hours, so a pooled connection cannot hang a handler (docs/reliability.md).
PG_TCP_DEFAULTS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,  # ms: unacknowledged data (a query sent into the void) fails after 60 s
}


def pg_connect_args(url: str) -> dict[str, Any]:
    """`PG_TCP_DEFAULTS` less what the URL's query already chooses."""
    query = make_url(url).query
    return {key: value for key, value in PG_TCP_DEFAULTS.items() if key not in query}


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """An async engine for `url`; SQLite gets WAL and a busy timeout, PostgreSQL TCP keepalives."""
    ensure_sqlite_dir(url)
    aurl = async_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if aurl.startswith("postgresql"):
        kwargs.update(
            pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, connect_args=pg_connect_args(aurl)
        )
    engine = create_async_engine(aurl, **kwargs)
    if aurl.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """Raise when the database does not answer."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def is_sqlite(engine_or_url: AsyncEngine | str) -> bool:
    url = engine_or_url if isinstance(engine_or_url, str) else str(engine_or_url.url)
    return url.startswith("sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back time-zone aware (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: timestamps are stored in UTC (R33)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
