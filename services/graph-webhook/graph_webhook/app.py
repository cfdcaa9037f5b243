"""The graph-webhook service: Graph's notifications in, confirmed bus messages out, subscriptions kept alive.

`create_app()` wires everything; its keyword arguments (a user directory, a Graph client) are the
test seam. The broker may be down at start: the app still starts, answers 503 to notifications
(Graph redelivers) and `/readyz` names the broker until a background task has connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Response
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Receive, Scope, Send

from graph_webhook import lifecycle, notifications, status
from graph_webhook.cache import SubscriptionCache
from graph_webhook.directory import ErpDirectory, UserDirectory
from graph_webhook.endpoint import NotificationsEndpoint, handles
from graph_webhook.lifecycle import LifecycleHandler
from graph_webhook.notifications import NotificationIntake
from graph_webhook.settings import GraphWebhookSettings, get_settings
from graph_webhook.subscription_gauges import SubscriptionProbe
from graph_webhook.subscriptions import SubscriptionManager
from shared import db
from shared.bus import Bus
from shared.errors import BrokerUnavailable
from shared.graph import GraphClient
from shared.health import database_ready, health_router
from shared.logs import setup_logging
from shared.memory import settle_heap, unsettle_heap
from shared.metrics import Sampler
from shared.migrations import upgrade
from shared.telemetry import instrument_app, setup_telemetry

log = logging.getLogger(__name__)
SERVICE = "graph-webhook"
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_webhook"


@dataclass
class WebhookState:
    """Everything the request handlers and background tasks share."""

    settings: GraphWebhookSettings
    engine: AsyncEngine
    bus: Bus
    cache: SubscriptionCache
    intake: NotificationIntake
    graph: GraphClient
    directory: UserDirectory
    manager: SubscriptionManager | None
    broker_error: str | None = "not connected yet"
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class WebhookApp(FastAPI):
    """FastAPI, except that `POST /notifications` is answered by `NotificationsEndpoint` before the framework.

    Only once the lifespan has set up the service's state; before that (and for every other request)
    FastAPI answers, its `/notifications` route included.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._notifications = NotificationsEndpoint(lambda: self.state.webhook)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if handles(scope) and getattr(self.state, "webhook", None) is not None:
            await self._notifications(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def migrate(settings: GraphWebhookSettings) -> None:
    upgrade(settings.webhook_database_url, MIGRATIONS, VERSION_TABLE)


def create_app(
    settings: GraphWebhookSettings | None = None,
    *,
    directory: UserDirectory | None = None,
    graph: GraphClient | None = None,
) -> FastAPI:
    """The FastAPI app; `directory` and `graph` replace the ERP user list and the Graph client."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_logging(SERVICE, settings.log_level, settings.log_json)
        if settings.auto_migrate:
            # Not in a thread: Alembic's context is process-global, and other services' migrations
            # may run in the same process (tests).
            migrate(settings)
        engine = db.create_engine(settings.webhook_database_url)
        cache = SubscriptionCache(engine)
        await cache.load()
        bus = Bus(settings, SERVICE)
        graph_client = graph or GraphClient(settings)
        users = directory or ErpDirectory(
            settings.erp_connector_url, settings.erp_api_token.get_secret_value(), timeout_s=settings.erp_timeout_s
        )
        manager = (
            SubscriptionManager(settings, graph_client, users, engine, cache, bus)
            if settings.subscriptions_enabled
            else None
        )
        intake = NotificationIntake(
            settings, cache, bus, LifecycleHandler(settings, manager), manager.owe_resync if manager else None
        )
        state = WebhookState(settings, engine, bus, cache, intake, graph_client, users, manager)
        app.state.webhook = state
        state.tasks.append(asyncio.create_task(_connect_bus(state), name="bus-connect"))
        state.tasks.append(asyncio.create_task(_every(settings.last_notification_flush_s, cache.flush), name="flush"))
        state.tasks.append(
            asyncio.create_task(_every(settings.subscription_cache_refresh_s, cache.load), name="cache-refresh")
        )
        if manager is not None:
            state.tasks.append(asyncio.create_task(manager.run_forever(), name="subscriptions"))
        # Subscription counts and expiry horizon, judged by Graph's clock.
        gauges = Sampler(SERVICE, [SubscriptionProbe(engine, graph_client.now)])
        gauges.start()
        # A full collection no longer walks what start-up built (50-90 ms each under load, the
        # POSTs' p99 tail).
        settle_heap()
        log.info("graph-webhook started", extra={"notification_url": settings.notification_url})
        try:
            yield
        finally:
            unsettle_heap()
            await gauges.stop()
            for task in state.tasks:
                task.cancel()
            for task in state.tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await cache.flush()
            await bus.close()
            if graph is None:
                await graph_client.aclose()
            if directory is None and isinstance(users, ErpDirectory):
                await users.aclose()
            await engine.dispose()
            log.info("graph-webhook stopped")

    # Here, not in the lifespan: instrumenting adds middleware, which Starlette refuses once started.
    setup_telemetry(
        SERVICE, settings.otel_exporter_otlp_endpoint, user_salt=settings.telemetry_user_salt.get_secret_value()
    )
    app = WebhookApp(title="graph-webhook", lifespan=lifespan)
    instrument_app(app)
    # Their 202 has no body (not JSON), as the OpenAPI document says.
    app.include_router(notifications.router, default_response_class=Response)
    # Documented here: lifecycle.py declares the route, it answers like /notifications.
    app.include_router(lifecycle.router, responses=notifications.RESPONSES, default_response_class=Response)
    app.include_router(status.router, responses={401: {"description": "No or wrong bearer token (OPS_API_TOKEN)"}})

    def checks() -> dict[str, Callable[[], Awaitable[None]]]:
        state: WebhookState | None = getattr(app.state, "webhook", None)
        if state is None:
            return {}

        async def broker() -> None:
            if state.broker_error is not None:
                raise BrokerUnavailable(state.broker_error)
            await state.bus.ping()

        async def database() -> None:
            await database_ready(state.engine)

        return {"database": database, "broker": broker}

    app.include_router(health_router(checks))
    return app


async def _connect_bus(state: WebhookState) -> None:
    """Connect to the broker, retrying until it answers; then consume `user.changed`."""
    settings = state.settings
    while True:
        try:
            await state.bus.connect(timeout=5.0)
            break
        except Exception as exc:
            state.broker_error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("broker unavailable, retrying in %.0fs: %s", settings.broker_retry_s, state.broker_error)
            await asyncio.sleep(settings.broker_retry_s)
    state.broker_error = None
    if state.manager is not None:
        queue = f"{settings.amqp_prefix}graph-webhook.control"
        await state.bus.consume(queue, state.manager.on_user_changed)
        # Resyncs (and failure reports) held back while the broker was away go out now, and again
        # each time it comes back after a loss (resyncs owed for the notifications refused meanwhile).
        state.manager.wake(full=True)
        state.bus.on_reconnected(state.manager.wake)
    log.info("broker connected")


async def _every(interval_s: float, fn: Callable[[], Awaitable[object]]) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await fn()
        except Exception:
            log.warning("periodic %s failed", getattr(fn, "__name__", "task"), exc_info=True)
