"""The ops API: JSON under `/api/v1/ops`, bearer token OPS_API_TOKEN, documented in `/docs`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sync_core.api import anomalies, imports, ops, queues, subscriptions, users
from sync_core.operations.errors import OpsError

ROUTERS = (ops.router, users.router, anomalies.router, imports.router, queues.router, subscriptions.router)


async def _ops_error(request: Request, exc: Exception) -> JSONResponse:
    status = exc.status if isinstance(exc, OpsError) else 500
    return JSONResponse({"detail": str(exc)}, status_code=status)


def install(app: FastAPI) -> None:
    """Add the ops API's routers and turn operation errors into their HTTP status."""
    for router in ROUTERS:
        app.include_router(router)
    app.add_exception_handler(OpsError, _ops_error)
