"""Fixtures of the erp-connector tests: the app over real HTTP, its database, a tap on the bus."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import httpx
import pytest
from erp_support import TOKEN, Running, Tap, wait_ready

from erp_connector.app import create_app, migrate
from erp_connector.database import Database
from erp_connector.settings import ErpConnectorSettings
from erp_connector.unit_of_work import UnitOfWork
from shared.settings import CommonSettings
from tests.support.servers import serve


@pytest.fixture
def erp_settings(common_settings: CommonSettings, database_url: str) -> ErpConnectorSettings:
    return ErpConnectorSettings(
        **common_settings.model_dump(),
        erp_database_url=database_url,
        erp_api_token=TOKEN,  # type: ignore[arg-type]
        erp_outbox_relay_interval_s=0.2,
        erp_broker_retry_s=0.2,
    )


@pytest.fixture
async def uow(database_url: str) -> AsyncIterator[UnitOfWork]:
    """The embedded ERP on a migrated, empty database, without app or broker."""
    migrate(database_url)
    db = Database(database_url)
    try:
        yield UnitOfWork(db)
    finally:
        await db.dispose()


@pytest.fixture
async def tap(common_settings: CommonSettings) -> AsyncIterator[Tap]:
    """A private queue bound to every routing key of the test's exchange."""
    conn = await aio_pika.connect(common_settings.amqp_url.get_secret_value())
    channel = await conn.channel()
    exchange = await channel.declare_exchange(
        f"{common_settings.amqp_prefix}sync", aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, "#")
    tapped = Tap()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()
        tapped.messages.append(message)
        tapped.arrived.set()

    await queue.consume(on_message)
    try:
        yield tapped
    finally:
        await conn.close()


@pytest.fixture
async def erp(erp_settings: ErpConnectorSettings, tap: Tap) -> AsyncIterator[Running]:
    """erp-connector served over HTTP, connected to the broker, with an authenticated client."""
    app = create_app(erp_settings)
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client,
    ):
        await wait_ready(client)
        yield Running(url, app, client)
