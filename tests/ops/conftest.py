"""One running system (simulator + the three services on the real broker) shared by the ops tests.

Starting the system costs seconds, so the tests of this package share one per database; each test
leaves the representative REP01 as it found it. Reconciliation runs only on demand here (its
schedule is proved with a system of its own) and sees changes at once (no settle time).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from shared.settings import CommonSettings
from tests.conftest import PG_URL, _database_params
from tests.support.system import OPS_TOKEN, System, running_system

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts"))
SYNC_OVERRIDES: dict[str, Any] = {"reconcile_interval_s": 0, "reconcile_settle_s": 0}


def make_common(amqp_url: str, prefix: str) -> CommonSettings:
    return CommonSettings(
        amqp_url=amqp_url,  # type: ignore[arg-type]
        amqp_prefix=prefix,
        environment="test",
        retry_delays_ms=[100, 300, 600],
        sync_shards=4,
        log_json=False,
    )


async def drop_topology(amqp_url: str, prefix: str) -> None:
    import aio_pika

    from shared.bus import topology_of

    conn = await aio_pika.connect(amqp_url)
    try:
        channel = await conn.channel()
        topo = topology_of(CommonSettings(amqp_prefix=prefix, sync_shards=4, retry_delays_ms=[100, 300, 600]))
        for name in topo.all_queue_names():
            await channel.queue_delete(name)
        await channel.exchange_delete(topo.exchange)
    finally:
        await conn.close()


def new_database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp}/ops.db"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(PG_URL)
    name = f"t_ops_{uuid.uuid4().hex[:10]}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture(scope="package", loop_scope="session", params=_database_params())
async def ops_system(
    request: pytest.FixtureRequest, amqp_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[System]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    tmp = tmp_path_factory.mktemp(f"ops-{request.param}")
    databases = new_database(request.param, tmp)
    url = next(databases)
    try:
        async with running_system(make_common(amqp_url, prefix), url, tmp, sync_overrides=SYNC_OVERRIDES) as system:
            system.extra["database"] = request.param
            yield system
    finally:
        databases.close()
        await drop_topology(amqp_url, prefix)


@pytest_asyncio.fixture(loop_scope="session")
async def ops(ops_system: System) -> AsyncIterator[httpx.AsyncClient]:
    """The ops API of the shared system, with its bearer token."""
    async with httpx.AsyncClient(
        base_url=ops_system.sync_url,
        headers={"Authorization": f"Bearer {OPS_TOKEN}", "X-Ops-Actor": "tests"},
        timeout=30,
    ) as client:
        yield client


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
