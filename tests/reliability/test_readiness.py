"""`/readyz` when the database cannot be used (issue 9): each service answers 503 naming the database and
why while it lasts, within ~2 s (a probe never hangs), and 200 again afterwards without being restarted.

SQLite: another connection holds the write lock (`BEGIN EXCLUSIVE`): reads still work (WAL), writes wait
for the busy timeout and fail. PostgreSQL: a TCP proxy between the services and the server is cut (every
connection closed, new ones refused: the server restarting) or partitioned (bytes dropped: nobody answers).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from shared.settings import CommonSettings
from tests.support.system import System, eventually, running_system
from tests.support.tcp_proxy import TcpProxy, tcp_proxy

PG_URL = os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"
PROBE_BOUND_S = 2.8  # the probe's own 2 s bound plus an HTTP round trip on a busy machine


def service_urls(system: System) -> dict[str, str]:
    return {"erp-connector": system.erp_url, "graph-webhook": system.webhook_url, "sync-core": system.sync_url}


async def readyz(url: str) -> tuple[int, dict[str, Any], float]:
    began = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        r = await c.get("/readyz")
    return r.status_code, r.json(), time.monotonic() - began


async def all_ready(system: System) -> bool:
    statuses = [(await readyz(url))[0] for url in service_urls(system).values()]
    return statuses == [200, 200, 200]


def lock_sqlite(path: Path) -> sqlite3.Connection:
    """Another process's writer: holds the database's write lock until rolled back."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


async def test_readyz_is_503_while_the_sqlite_database_is_write_locked_and_200_after(
    system: System, tmp_path: Path
) -> None:
    if system.sync_settings is None or not system.sync_settings.sync_database_url.startswith("sqlite"):
        pytest.skip("SQLite's write lock; PostgreSQL's unavailability is the next test")
    files = {"erp-connector": "erp.db", "graph-webhook": "webhook.db", "sync-core": "sync.db"}
    urls = service_urls(system)
    assert await all_ready(system)
    for name, file in files.items():
        lock = await asyncio.to_thread(lock_sqlite, tmp_path / file)
        try:
            status, body, took = await readyz(urls[name])
            assert status == 503, (name, body)
            assert body["failing"] == ["database"], (name, body)
            assert "locked" in body["checks"]["database"], (name, body)
            assert took < PROBE_BOUND_S, (name, took)
            others = [await readyz(u) for n, u in urls.items() if n != name]
            assert [s for s, _, _ in others] == [200, 200]  # their own databases are free
            await asyncio.sleep(0.5)
            assert (await readyz(urls[name]))[0] == 503  # as long as it lasts
        finally:
            await asyncio.to_thread(lock.rollback)
            lock.close()
        await eventually(lambda: all_ready(system), timeout=5)  # no restart needed


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the machine's server (the server itself is never restarted)."""
    base = make_url(PG_URL)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            name = f"t_{uuid.uuid4().hex[:12]}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {base.host}:{base.port} ({exc}); set TEST_DATABASE_URL")
    yield base.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def proxied_pg(pg_database: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """The database's URL through a proxy the test can cut."""
    url = make_url(pg_database)
    with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield proxy, url.set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)


@pytest.mark.parametrize("fault", ["cut", "blackhole"])
async def test_readyz_is_503_while_postgresql_is_unreachable_and_200_after(
    common_settings: CommonSettings, proxied_pg: tuple[TcpProxy, str], tmp_path: Path, fault: str
) -> None:
    proxy, url = proxied_pg
    async with running_system(common_settings, url, tmp_path) as system:
        urls = service_urls(system)
        assert await all_ready(system)
        getattr(proxy, fault)()
        for _ in range(2):  # while it lasts, every time
            for name, service_url in urls.items():
                status, body, took = await readyz(service_url)
                assert status == 503, (name, body)
                assert body["failing"] == ["database"], (name, body)
                assert body["checks"]["database"].startswith("failing:"), (name, body)
                assert took < PROBE_BOUND_S, (name, took)
        proxy.restore()
        await eventually(lambda: all_ready(system), timeout=10)  # no restart needed
        # And the services really work again: a change crosses from the ERP to Outlook.
        await system.erp_write(
            "POST",
            "activities",
            {
                "kind": "task",
                "subject": f"After {fault}",
                "representative": "REP01",
            },
            expect=201,
        )

        async def crossed() -> bool:
            return any(t["data"].get("title") == f"After {fault}" for t in await system.sim_items("tasks"))

        await eventually(crossed, timeout=30)
