"""Fixtures of the security tests: the services on loopback (their own broker prefix), seeded with data.

The schemathesis tests are synchronous, so the services they fuzz run in a loop of their own
(`background.in_background`); every test talks to them over real HTTP only.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from erp_connector.app import create_app as create_erp_app
from erp_connector.settings import ErpConnectorSettings
from shared.settings import CommonSettings
from tests.conftest import PG_URL, _database_params
from tests.security.background import in_background
from tests.support.servers import serve
from tests.support.system import ERP_TOKEN, PARTNERS, REP01, System, running_system

SHARDS = 4
RETRY_DELAYS_MS = [100, 300, 600]
# Reconciliation only on demand (a fuzzed `POST /reconcile` runs it) and without settle time.
SYNC_OVERRIDES = {"reconcile_interval_s": 0, "reconcile_settle_s": 0}


def common(amqp_url: str, prefix: str) -> CommonSettings:
    return CommonSettings(
        amqp_url=amqp_url,  # type: ignore[arg-type]
        amqp_prefix=prefix,
        environment="test",
        retry_delays_ms=RETRY_DELAYS_MS,
        sync_shards=SHARDS,
        log_json=False,
    )


async def drop_topology(amqp_url: str, prefix: str) -> None:
    """Delete the exchange and queues a test run declared under `prefix` (the broker is shared)."""
    import aio_pika

    from shared.bus import topology_of

    conn = await aio_pika.connect(amqp_url)
    try:
        channel = await conn.channel()
        topo = topology_of(CommonSettings(amqp_prefix=prefix, sync_shards=SHARDS, retry_delays_ms=RETRY_DELAYS_MS))
        for name in topo.all_queue_names():
            await channel.queue_delete(name)
        await channel.exchange_delete(topo.exchange)
    finally:
        await conn.close()


def new_database(kind: str, tmp: Path, name: str) -> Generator[str, None, None]:
    """A fresh database: a SQLite file, or a new PostgreSQL database (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp}/{name}.db"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(PG_URL)
    database = f"t_sec_{uuid.uuid4().hex[:10]}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        yield base.set(database=database).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@dataclass
class Erp:
    url: str
    database: str


@asynccontextmanager
async def erp_connector(amqp_url: str, prefix: str, database_url: str) -> AsyncIterator[Erp]:
    """erp-connector on its own database and the shared broker, seeded with REP01 and three partners."""
    settings = ErpConnectorSettings(
        **common(amqp_url, prefix).model_dump(),
        erp_database_url=database_url,
        erp_api_token=ERP_TOKEN,  # type: ignore[arg-type]
        erp_outbox_relay_interval_s=0.2,
        erp_broker_retry_s=0.2,
    )
    try:
        async with serve(create_erp_app(settings)) as url:
            async with httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {ERP_TOKEN}"}, timeout=10
            ) as client:
                for _ in range(200):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.05)
                (await client.post("/api/v1/representatives", json=REP01)).raise_for_status()
                for partner in PARTNERS:
                    (await client.post("/api/v1/partners", json=partner)).raise_for_status()
            yield Erp(url, "sqlite" if database_url.startswith("sqlite") else "postgresql")
    finally:
        await drop_topology(amqp_url, prefix)


@pytest.fixture(scope="package", params=_database_params())
def erp_in_background(
    request: pytest.FixtureRequest, amqp_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Erp]:
    """erp-connector served from a thread of its own (for synchronous tests), on each database."""
    databases = new_database(request.param, tmp_path_factory.mktemp("erp"), "erp")
    url = next(databases)
    prefix = f"t{uuid.uuid4().hex[:8]}."
    try:
        with in_background(lambda: erp_connector(amqp_url, prefix, url)) as erp:
            yield erp
    finally:
        databases.close()


@pytest.fixture(scope="package", params=_database_params())
def system_in_background(
    request: pytest.FixtureRequest, amqp_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    """The whole system (simulator, the three services, REP01 and its mailbox) served from a thread of
    its own, on each database. Tests reach it over HTTP only: its clients belong to that thread's loop."""
    tmp = tmp_path_factory.mktemp(f"system-{request.param}")
    databases = new_database(request.param, tmp, "system")
    url = next(databases)
    prefix = f"t{uuid.uuid4().hex[:8]}."

    @asynccontextmanager
    async def system() -> AsyncIterator[System]:
        try:
            async with running_system(common(amqp_url, prefix), url, tmp, sync_overrides=SYNC_OVERRIDES) as running:
                running.extra["database"] = request.param
                yield running
        finally:
            await drop_topology(amqp_url, prefix)

    try:
        with in_background(system) as running:
            yield running
    finally:
        databases.close()
