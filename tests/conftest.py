"""Fixtures every test package shares: the real broker, real databases, telemetry capture."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlparse

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.settings import CommonSettings
from shared.telemetry import setup_telemetry

AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG_URL = os.environ.get("TEST_DATABASE_URL", "")


def _reachable(url: str, default_port: int) -> bool:
    u = urlparse(url)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or default_port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The real RabbitMQ; a test that needs it fails (never skips) when it is missing."""
    if not _reachable(AMQP_URL, 5672):
        pytest.fail(
            f"RabbitMQ is not reachable at {urlparse(AMQP_URL).hostname}:{urlparse(AMQP_URL).port or 5672}. "
            "Start it (`rabbitmq-server -detached`, or `docker compose up -d rabbitmq`) or set TEST_AMQP_URL."
        )
    return AMQP_URL


@pytest.fixture
async def amqp_prefix(amqp_url: str) -> AsyncIterator[str]:
    """A prefix that isolates this test's exchange and queues; they are deleted afterwards."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    yield prefix
    import aio_pika

    from shared.bus import topology_of

    conn = await aio_pika.connect(amqp_url)
    try:
        channel = await conn.channel()
        topo = topology_of(CommonSettings(amqp_prefix=prefix))
        for name in topo.all_queue_names():
            await channel.queue_delete(name)
        await channel.exchange_delete(topo.exchange)
    finally:
        await conn.close()


@pytest.fixture
def common_settings(amqp_url: str, amqp_prefix: str) -> CommonSettings:
    return CommonSettings(
        amqp_url=amqp_url,  # type: ignore[arg-type]
        amqp_prefix=amqp_prefix,
        environment="test",
        retry_delays_ms=[100, 300, 600],
        sync_shards=4,
        log_json=False,
    )


def _database_params() -> list[str]:
    return ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


@pytest.fixture(params=_database_params())
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh, empty database: a SQLite file, and a new PostgreSQL database when TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/test.db"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(PG_URL)
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """Every span finished in this process, whichever service made it."""
    provider = setup_telemetry("tests")
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter
