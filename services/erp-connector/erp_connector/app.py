"""The erp-connector app: the embedded ERP's REST API, signed ERP events in, the outbox relay out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from erp_connector import webhooks
from erp_connector.api import api_router
from erp_connector.api.responses import install_error_handlers
from erp_connector.database import Database
from erp_connector.outbox import OutboxProbe, OutboxRelay
from erp_connector.settings import ErpConnectorSettings, get_settings
from erp_connector.unit_of_work import UnitOfWork
from shared.bus import Bus
from shared.errors import BrokerUnavailable
from shared.health import Check, database_ready, health_router
from shared.logs import setup_logging
from shared.memory import settle_heap, unsettle_heap
from shared.metrics import Sampler
from shared.migrations import upgrade
from shared.telemetry import instrument_app, setup_telemetry

SERVICE = "erp-connector"
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_erp"

log = logging.getLogger(__name__)


def migrate(url: str) -> None:
    """Bring the connector's tables to the latest migration (idempotent)."""
    upgrade(url, MIGRATIONS, VERSION_TABLE)


async def connect_bus(bus: Bus, retry_s: float, on_connected: Callable[[], None]) -> None:
    """Connect to the broker, retrying for as long as it takes: a broker down at start only delays."""
    warned = False
    while True:
        try:
            await bus.connect(timeout=5.0)
        except Exception as exc:
            await bus.close(drain_timeout=0)  # drop a half-open connection before the next try
            if not warned:
                log.warning("broker unavailable, retrying every %.0fs: %s", retry_s, type(exc).__name__)
                warned = True
            await asyncio.sleep(retry_s)
            continue
        log.info("broker connected")
        on_connected()
        return


def _report_relay_end(task: asyncio.Task[None]) -> None:
    """The relay only ends at shutdown; anything else must be loud, or changes stop silently."""
    if not task.cancelled() and task.exception() is not None:
        log.error("outbox relay stopped", exc_info=task.exception())


def create_app(settings: ErpConnectorSettings | None = None) -> FastAPI:
    """The FastAPI app; `settings` is the test seam (default: from the environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_logging(SERVICE, settings.log_level, settings.log_json)
        if settings.auto_migrate:
            # Synchronous on purpose: Alembic's context is process-global and must not run
            # concurrently with another service's migrations in the same process (tests).
            migrate(settings.erp_database_url)
        db = Database(settings.erp_database_url)
        bus = Bus(settings, SERVICE)
        relay = OutboxRelay(db, bus, settings)
        app.state.db = db
        app.state.bus = bus
        app.state.relay = relay
        app.state.uow = UnitOfWork(db, refuse_overlaps=settings.erp_refuse_overlaps, on_commit=relay.wake)

        def broker_ready() -> None:
            relay.broker_ready = True
            relay.wake()

        connector = asyncio.create_task(connect_bus(bus, settings.erp_broker_retry_s, broker_ready))
        relay_task = asyncio.create_task(relay.run())
        relay_task.add_done_callback(_report_relay_end)
        gauges = Sampler(SERVICE, [OutboxProbe(db)])
        gauges.start()
        settle_heap()  # ADR 0059: collections that do not walk what start-up built
        log.info("erp-connector ready", extra={"port": settings.erp_connector_port})
        try:
            yield
        finally:
            unsettle_heap()
            await gauges.stop()
            relay.stop()
            connector.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(relay_task, 10)
            with contextlib.suppress(asyncio.CancelledError):
                await connector
            await bus.close()
            await db.dispose()

    # Telemetry is set up here, not in the lifespan: instrumenting adds middleware, which
    # Starlette refuses once the app has started.
    setup_telemetry(
        SERVICE, settings.otel_exporter_otlp_endpoint, user_salt=settings.telemetry_user_salt.get_secret_value()
    )
    app = FastAPI(
        title="erp-connector",
        version="1.0",
        summary="The embedded ERP/CRM: REST API for sync-core, signed ERP events in, changes out.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    # Built now so that a malformed ERP_WEBHOOK_SECRET stops the service at start.
    app.state.webhook = Webhook(settings.erp_webhook_secret.get_secret_value())
    install_error_handlers(app)
    app.include_router(api_router)
    app.include_router(webhooks.router)

    async def broker() -> None:
        # The bus looks connected before its topology is declared; ready means both.
        if not app.state.relay.broker_ready:
            raise BrokerUnavailable("still connecting to the broker")
        await app.state.bus.ping()

    def checks() -> dict[str, Check]:
        return {"database": lambda: database_ready(app.state.db.engine), "broker": broker}

    app.include_router(health_router(checks))
    instrument_app(app)
    return app
