"""sync-core: consumes the work queues and serves the ops API and console (port 8003)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlmodel import select

from shared import db
from shared.bus import Bus, received_at
from shared.envelope import Envelope
from shared.graph.client import GraphClient
from shared.health import database_ready, health_router
from shared.logs import setup_logging
from shared.memory import settle_heap, unsettle_heap
from shared.metrics import QueueProbe, Sampler, UserHealthProbe
from shared.telemetry import instrument_app, setup_telemetry
from sync_core import api, console
from sync_core.adapters.erp import ErpClient
from sync_core.auth import Admins
from sync_core.db import migrate
from sync_core.engine import Engine
from sync_core.models import UserState
from sync_core.reconcile import Reconciler
from sync_core.settings import SyncCoreSettings, get_settings
from sync_core.state import State
from sync_core.workers import Workers, own_shards, report_ready

log = logging.getLogger(__name__)
SERVICE = "sync-core"


class Runtime:
    """Everything the running service holds; built in the lifespan, reachable as `app.state.rt`."""

    def __init__(self, settings: SyncCoreSettings, worker_index: int = 0) -> None:
        self.settings = settings
        self.worker_index = worker_index
        self.engine_db = db.create_engine(settings.sync_database_url)
        self.state = State(db.session_factory(self.engine_db))
        self.bus = Bus(settings, SERVICE)
        self.erp = ErpClient(
            settings.erp_connector_url,
            settings.erp_api_token.get_secret_value(),
            batch_max=settings.erp_batch_max,
            batch_in_flight=settings.erp_batch_in_flight_per_process,
        )
        self.graph = GraphClient(settings)
        self.engine = Engine(state=self.state, erp=self.erp, graph=self.graph, tenant=settings.tenant)
        self.engine.settings_cache_s = settings.settings_cache_s
        self.erp.partners_cache_s = settings.settings_cache_s
        self.engine.delta_page_size = settings.delta_page_size
        self.engine.delta_apply_concurrency = settings.delta_apply_concurrency
        self.engine.publish = self.bus.publish
        # Console and ops API: admins and their sessions, reconciliation (R26).
        self.admins = Admins(self.state.sessions, settings)
        self.reconciler = Reconciler(self)
        self._connector: asyncio.Task[None] | None = None
        self._heap_settled = False
        # The main process (index 0) serves HTTP, reconciles and samples gauges; workers only consume,
        # and only the main process starts them (when there are more processes than itself).
        self.main = worker_index == 0
        starts_workers = self.main and settings.consume and settings.sync_core_workers > 1
        self.workers = Workers(settings.sync_core_workers, settings) if starts_workers else None
        # Gauges sampled on a schedule: every queue of the topology, per-user health (R35).
        self.metrics = Sampler(SERVICE, [QueueProbe(self.bus), UserHealthProbe(self.user_health)])

    async def user_health(self) -> dict[str, bool]:
        async with self.state.sessions() as s:
            return {user: healthy for user, healthy in (await s.exec(select(UserState.user, UserState.healthy))).all()}

    async def handle(self, env: Envelope) -> None:
        await self.engine.handle(env, received_at.get())

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect_bus())
        if self.main:
            self.metrics.start()
        if self.settings.consume and self.main:
            self.reconciler.start()
        settle_heap()  # ADR 0059: collections that do not walk what start-up built
        self._heap_settled = True

    async def _connect_bus(self) -> None:
        """Connect and consume; a broker that is down at start is retried, not fatal."""
        delay = 0.5
        while True:
            try:
                await self.bus.connect()
                break
            except Exception as exc:
                log.warning("broker not reachable (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
        if not self.settings.consume:
            return
        # Own shards first, then (main process) the workers, then every other shard as their standby:
        # the order of subscription decides which consumer is active (ADR 0055).
        s = self.settings
        own = own_shards(s.sync_shards, s.sync_core_workers, self.worker_index)
        for shard in own:
            await self.bus.consume(self.bus.topology.sync_core_queue(shard), self.handle)
        report_ready()  # a worker tells its main process; no-op in the main process
        if self.workers is None:
            return
        await self.workers.start()
        for shard in range(s.sync_shards):
            if shard not in own:
                await self.bus.consume(self.bus.topology.sync_core_queue(shard), self.handle)

    async def stop(self) -> None:
        if self._heap_settled:
            unsettle_heap()
            self._heap_settled = False
        await self.metrics.stop()
        await self.reconciler.stop()
        if self._connector is not None:
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
        # Workers drain their running handlers while this process drains its own.
        stopping = [self.bus.close()] + ([self.workers.stop()] if self.workers is not None else [])
        await asyncio.gather(*stopping)
        try:
            await self.engine.aclose()
        except Exception:
            log.warning("pending state not written at stop", exc_info=True)
        await self.erp.close()
        await self.graph.aclose()
        await self.engine_db.dispose()


def create_app(settings: SyncCoreSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_logging(SERVICE, settings.log_level, settings.log_json)
        if settings.auto_migrate:
            await asyncio.to_thread(migrate, settings.sync_database_url)
        rt = Runtime(settings)
        app.state.rt = rt
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    setup_telemetry(
        SERVICE, settings.otel_exporter_otlp_endpoint, user_salt=settings.telemetry_user_salt.get_secret_value()
    )
    app = FastAPI(title="sync-core", version="0.1.0", lifespan=lifespan)

    def checks() -> dict:
        rt: Runtime | None = getattr(app.state, "rt", None)
        if rt is None:
            return {}
        checks: dict = {"broker": rt.bus.ping, "database": lambda: database_ready(rt.engine_db)}
        if rt.workers is not None:
            checks["workers"] = rt.workers.check
        return checks

    app.include_router(health_router(checks))
    api.install(app)
    console.install(app)
    instrument_app(app)
    return app
