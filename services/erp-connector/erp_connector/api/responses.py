"""How the API answers: written records with their version as ETag, and ERP refusals as 4xx."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError

from erp_connector.errors import ErpError
from erp_connector.unit_of_work import WriteResult

log = logging.getLogger(__name__)

# The largest request body of the REST API: a record is a few KiB (an activity's notes at most
# 100 000 characters); anything bigger is refused before it is read or parsed.
MAX_BODY_BYTES = 2 * 1024 * 1024

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed request header, e.g. an If-Match that is not a version (`bad_if_match`)"},
    401: {"description": "No or wrong bearer token"},
    404: {"description": "No such record"},
    409: {"description": "Conflict: already exists, deleted (code `deleted`), or overlapping meeting (R15, `overlap`)"},
    412: {"description": "If-Match names a stale version; `detail.current` is the record as it is"},
    413: {"description": f"Request body over {MAX_BODY_BYTES} bytes (code `too_large`)"},
    422: {"description": "Invalid data, e.g. unknown partner (R11, code `unknown_partner`)"},
}


def etag(version: int) -> str:
    return f'"{version}"'


def written_headers(result: WriteResult, *, location: str | None = None) -> dict[str, str]:
    """The headers of a write's answer: its version as ETag, `Idempotent-Replayed` for a replay,
    `Location` for a creation."""
    headers = {}
    if "version" in result.body:
        headers["ETag"] = etag(int(result.body["version"]))
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    if location and result.status_code == 201:
        headers["Location"] = location
    return headers


def written(result: WriteResult, *, location: str | None = None) -> JSONResponse:
    """The answer to a write; a replayed idempotent write says so in `Idempotent-Replayed`."""
    return JSONResponse(result.body, status_code=result.status_code, headers=written_headers(result, location=location))


def _too_large() -> JSONResponse:
    message = f"a request body is at most {MAX_BODY_BYTES} bytes"
    return JSONResponse({"detail": {"code": "too_large", "message": message}}, status_code=413)


class BoundedBodyRoute(APIRoute):
    """A route that refuses (413) a body over `MAX_BODY_BYTES` before reading or parsing it all,
    whether its size is declared (Content-Length) or not (chunked)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                return _too_large()
            chunks: list[bytes] = []
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    return _too_large()
                chunks.append(chunk)
            # Starlette's own cache of the body: the handler reads it from here, not the socket.
            request._body = b"".join(chunks)
            return await handler(request)

        return bounded


async def _erp_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ErpError)
    return JSONResponse({"detail": exc.detail()}, status_code=exc.status_code)


DATA_REFUSED = "a value of the request is not acceptable to the database"


async def _data_error(_request: Request, exc: Exception) -> JSONResponse:
    """The database refused a value the schemas let through: the request's fault, and retrying it
    changes nothing, so 422 rather than 500. The transaction was rolled back: nothing was written."""
    log.warning("request refused by the database: %s", type(getattr(exc, "orig", exc)).__name__)
    return JSONResponse({"detail": {"code": "invalid", "message": DATA_REFUSED}}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ErpError, _erp_error)
    app.add_exception_handler(DataError, _data_error)
