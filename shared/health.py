"""`/healthz` (the process is alive) and `/readyz` (its broker and database answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

Check = Callable[[], Awaitable[None]]


def health_router(checks: Callable[[], dict[str, Check]], timeout_s: float = 2.0) -> APIRouter:
    """Router with the two probes; `checks` returns the named readiness checks of the moment."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks().items():
            try:
                await asyncio.wait_for(check(), timeout_s)
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"failing: {type(exc).__name__}: {exc}"[:300]
        failing = [n for n, r in results.items() if r != "ok"]
        status = 503 if failing else 200
        body = {"status": "ready" if not failing else "not ready", "checks": results, "failing": failing}
        return JSONResponse(body, status_code=status)

    return router
