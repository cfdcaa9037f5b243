"""`POST /api/v1/batch`: several creates in one HTTP request, each answered as if sent alone.

Shaped like Graph's JSON batching: `{"requests": [{"id", "method", "url", "headers", "body"}]}`
answered `{"responses": [{"id", "status", "headers", "body"}]}` in the same order. Each request is
the `POST /activities` or `POST /contacts` it stands for, with the same validation, business rules,
idempotency key (a key used in a batch replays alone, and the other way round), origin header and
transaction of its own: one refused request refuses nothing else (ADR 0027). What it saves is the
HTTP request, the framework's work and the token check per record — the bulk of an initial sync.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.exc import DataError

from erp_connector.api.deps import MAX_IDEMPOTENCY_KEY, UowDep, canonical_json
from erp_connector.api.responses import DATA_REFUSED, ERROR_RESPONSES, BoundedBodyRoute, written_headers
from erp_connector.errors import ErpError
from erp_connector.models import Origin
from erp_connector.schemas import ActivityCreate, ContactCreate
from erp_connector.store import ErpStore
from erp_connector.unit_of_work import WriteRequest, fingerprint

router = APIRouter(tags=["batch"], responses=ERROR_RESPONSES, route_class=BoundedBodyRoute)

# Requests per batch; the body is also bounded (MAX_BODY_BYTES), as every request's is.
MAX_BATCH = 100

Create = Callable[[ErpStore, Any], Awaitable[BaseModel]]
BATCHABLE: dict[str, tuple[type[BaseModel], Create]] = {
    "/activities": (ActivityCreate, lambda erp, data: erp.create_activity(data)),
    "/contacts": (ContactCreate, lambda erp, data: erp.create_contact(data)),
}


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=50, description="Names the answer; unique in the batch")
    method: str = Field(max_length=10)
    url: str = Field(max_length=200, description="Relative to /api/v1: `/activities` or `/contacts`")
    headers: dict[str, str] = Field(default_factory=dict, max_length=20)
    body: dict[str, Any] | None = None


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH)

    @field_validator("requests")
    @classmethod
    def _unique_ids(cls, items: list[BatchItem]) -> list[BatchItem]:
        if len({i.id for i in items}) != len(items):
            raise ValueError("each request needs an id of its own")
        return items


class BatchAnswer(BaseModel):
    id: str
    status: int
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None


class BatchResponse(BaseModel):
    responses: list[BatchAnswer]


def _refused(item: BatchItem, status: int, code: str, message: str) -> BatchAnswer:
    return BatchAnswer(id=item.id, status=status, body={"detail": {"code": code, "message": message}})


async def _one(item: BatchItem, uow: UowDep) -> BatchAnswer:
    url = "/" + item.url.strip("/")
    target = BATCHABLE.get(url)
    if item.method.upper() != "POST" or target is None:
        allowed = " or ".join(f"POST {u}" for u in BATCHABLE)
        return _refused(item, 400, "not_batchable", f"a batch holds {allowed} only, not {item.method} {url[:60]}")
    headers = {k.lower(): v for k, v in item.headers.items()}
    key = headers.get("idempotency-key") or None
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
        return _refused(item, 422, "invalid", f"Idempotency-Key is at most {MAX_IDEMPOTENCY_KEY} characters")
    try:
        origin = Origin(headers.get("x-change-origin", Origin.ERP.value))
    except ValueError:
        return _refused(item, 422, "invalid", "X-Change-Origin is `erp` or `outlook`")
    schema, create = target
    try:
        data = schema.model_validate(item.body if item.body is not None else {})
    except ValidationError as exc:
        return BatchAnswer(id=item.id, status=422, body={"detail": jsonable_encoder(exc.errors(include_url=False))})
    # The fingerprint of the same request sent alone: the key means the same in both.
    body = canonical_json(item.body)
    request = WriteRequest(
        idempotency_key=key, fingerprint=fingerprint("POST", f"/api/v1{url}", body, origin.value), origin=origin
    )
    try:
        result = await uow.write(request, lambda erp: create(erp, data), status_code=201)
    except ErpError as exc:
        return BatchAnswer(id=item.id, status=exc.status_code, body={"detail": exc.detail()})
    except DataError:
        return _refused(item, 422, "invalid", DATA_REFUSED)
    answer_headers = written_headers(result, location=f"/api/v1{url}/{result.body.get('id')}")
    return BatchAnswer(id=item.id, status=result.status_code, headers=answer_headers, body=result.body)


@router.post("/batch", response_model=BatchResponse)
async def batch(data: BatchRequest, uow: UowDep) -> BatchResponse:
    """Up to 100 creates (`POST /activities`, `POST /contacts`), applied in order, each on its own.

    The answer is 200 with one response per request: its status (201, or the 4xx it would get
    alone), headers (`ETag`, `Location`, `Idempotent-Replayed`) and body. A request the batch does
    not hold is answered 400 `not_batchable`; the others still run."""
    if uow.db.transactions.queues_writes:
        # Asked for at once, the creates still run in order, and commit together (group commit).
        return BatchResponse(responses=list(await asyncio.gather(*(_one(item, uow) for item in data.requests))))
    return BatchResponse(responses=[await _one(item, uow) for item in data.requests])
