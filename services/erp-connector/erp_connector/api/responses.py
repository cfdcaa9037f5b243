"""How the API answers: written records with their version as ETag, and ERP refusals as 4xx."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from erp_connector.errors import ErpError
from erp_connector.unit_of_work import WriteResult

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or wrong bearer token"},
    404: {"description": "No such record"},
    409: {"description": "Conflict: already exists, deleted (code `deleted`), or overlapping meeting (R15, `overlap`)"},
    412: {"description": "If-Match names a stale version; `detail.current` is the record as it is"},
    422: {"description": "Invalid data, e.g. unknown partner (R11, code `unknown_partner`)"},
}


def etag(version: int) -> str:
    return f'"{version}"'


def written(result: WriteResult, *, location: str | None = None) -> JSONResponse:
    """The answer to a write; a replayed idempotent write says so in `Idempotent-Replayed`."""
    headers = {}
    if "version" in result.body:
        headers["ETag"] = etag(int(result.body["version"]))
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    if location and result.status_code == 201:
        headers["Location"] = location
    return JSONResponse(result.body, status_code=result.status_code, headers=headers)


async def _erp_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ErpError)
    return JSONResponse({"detail": exc.detail()}, status_code=exc.status_code)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ErpError, _erp_error)
