"""The simulator as an ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from graph_sim import auth, control
from graph_sim.config import SimConfig
from graph_sim.gateway import PREFIX, GraphGateway
from graph_sim.simulator import Simulator


class SimulatorApp(FastAPI):
    """FastAPI for auth and /_sim; Graph calls (/v1.0/...) skip the middleware stack (hot path)."""

    graph: GraphGateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX + "/"):
            await self.graph(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(config: SimConfig | None = None) -> FastAPI:
    """A self-contained simulator; its state is `app.state.sim`."""
    sim = Simulator(config or SimConfig())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await sim.subscriptions.stop()
        await sim.notifier.close()

    app = SimulatorApp(
        title="Microsoft Graph simulator",
        lifespan=lifespan,
        docs_url="/_sim/docs",
        openapi_url="/_sim/openapi.json",
        redoc_url=None,
    )
    app.state.sim = sim
    app.include_router(control.router)
    app.include_router(auth.router)
    app.graph = GraphGateway(sim)
    return app
