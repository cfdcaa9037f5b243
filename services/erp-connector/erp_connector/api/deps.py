"""Dependencies of the REST API: the unit of work, the bearer token, and how a write was asked for."""

from __future__ import annotations

import hmac
import json
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from erp_connector.models import Origin
from erp_connector.schemas import MAX_DB_INT
from erp_connector.settings import ErpConnectorSettings
from erp_connector.unit_of_work import UnitOfWork, WriteRequest, fingerprint

_bearer = HTTPBearer(auto_error=False, description="ERP_API_TOKEN")
MAX_IDEMPOTENCY_KEY = 200


async def get_settings(request: Request) -> ErpConnectorSettings:
    settings: ErpConnectorSettings = request.app.state.settings
    return settings


async def get_uow(request: Request) -> UnitOfWork:
    uow: UnitOfWork = request.app.state.uow
    return uow


SettingsDep = Annotated[ErpConnectorSettings, Depends(get_settings)]
UowDep = Annotated[UnitOfWork, Depends(get_uow)]


async def require_token(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Refuse a request without the API bearer token (compared in constant time)."""
    expected = settings.erp_api_token.get_secret_value().encode()
    given = (credentials.credentials if credentials else "").encode()
    if not credentials or not hmac.compare_digest(given, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail={"code": "unauthorized", "message": "a valid bearer token (ERP_API_TOKEN) is required"},
            headers={"WWW-Authenticate": "Bearer"},
        )


def _version(if_match: str | None) -> int | None:
    """`If-Match` as a version number: `3`, `"3"` and `W/"3"` all name version 3; `*` names any."""
    if if_match is None or if_match.strip() == "*":
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail={"code": "bad_if_match", "message": f"If-Match must be a version number, not {if_match[:40]!r}"},
        )
    return int(value)


def canonical_json(value: object) -> bytes:
    """A JSON value as compared for idempotency: by content, not by key order or spacing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _canonical(body: bytes) -> bytes:
    """JSON bodies compared by content, not by key order or spacing."""
    try:
        return canonical_json(json.loads(body))
    except (ValueError, RecursionError):
        # Not JSON, or nested too deeply to parse (a body on a DELETE is not read otherwise).
        return body


async def refuse_nul(request: Request) -> None:
    """422 for a NUL character in the path or the query: no database column can hold one."""
    values = [*request.path_params.values(), *request.query_params.values()]
    if any(isinstance(v, str) and "\x00" in v for v in values):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail={"code": "invalid", "message": "the path or query contains a NUL character (U+0000)"},
        )


async def write_request(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=MAX_IDEMPOTENCY_KEY, description="A retry with the same key returns the first result"),
    ] = None,
    if_match: Annotated[str | None, Header(description="The version the write expects; stale → 412")] = None,
    x_change_origin: Annotated[Origin | None, Header(description="`outlook` for a write made by sync-core")] = None,
) -> WriteRequest:
    body = _canonical(await request.body())
    origin = x_change_origin or Origin.ERP
    return WriteRequest(
        idempotency_key=idempotency_key or None,
        # If-Match is left out on purpose: a retry of a write that already succeeded may carry a
        # newer version (the client re-read after our write) and must still get the first answer.
        fingerprint=fingerprint(request.method, request.url.path, body, origin.value),
        expected_version=_version(if_match),
        origin=origin,
    )


WriteDep = Annotated[WriteRequest, Depends(write_request)]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size, at most 1000")]
# Bounded like the database's integers: a larger number is refused with 422, not a database error.
Offset = Annotated[int, Query(ge=0, le=MAX_DB_INT)]
RecordId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="The record's id")]
