"""`/api/v1/representatives`: the ERP's users, their mailbox and their sync switches (R13, R16, R23)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from erp_connector.api.deps import Limit, Offset, UowDep, WriteDep
from erp_connector.api.responses import ERROR_RESPONSES, BoundedBodyRoute, etag, written
from erp_connector.schemas import Page, RepresentativeCreate, RepresentativePublic, RepresentativeUpdate

router = APIRouter(
    prefix="/representatives", tags=["representatives"], responses=ERROR_RESPONSES, route_class=BoundedBodyRoute
)


@router.get("", response_model=Page[RepresentativePublic])
async def list_representatives(
    uow: UowDep,
    active: bool | None = None,
    sync_enabled: bool | None = None,
    email: str | None = None,
    updated_since: AwareDatetime | None = None,
    include_deleted: bool = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[RepresentativePublic]:
    since: datetime | None = updated_since
    return await uow.read(
        lambda erp: erp.list_representatives(
            active=active,
            enabled=sync_enabled,
            email=email,
            updated_since=since,
            include_deleted=include_deleted,
            limit=limit,
            offset=offset,
        )
    )


@router.get("/by-email/{email}", response_model=RepresentativePublic)
async def representative_by_email(email: str, uow: UowDep, response: Response) -> RepresentativePublic:
    """The representative whose mailbox this is (case-insensitive): how a Graph user is matched."""
    rep = await uow.read(lambda erp: erp.representative_by_email(email))
    response.headers["ETag"] = etag(rep.version)
    return rep


@router.get("/{code}", response_model=RepresentativePublic)
async def get_representative(code: str, uow: UowDep, response: Response) -> RepresentativePublic:
    rep = await uow.read(lambda erp: erp.get_representative(code))
    response.headers["ETag"] = etag(rep.version)
    return rep


@router.post("", status_code=201, response_model=RepresentativePublic)
async def create_representative(data: RepresentativeCreate, uow: UowDep, write: WriteDep) -> JSONResponse:
    result = await uow.write(write, lambda erp: erp.create_representative(data), status_code=201)
    return written(result, location=f"/api/v1/representatives/{data.code}")


@router.put("/{code}", response_model=RepresentativePublic)
async def update_representative(code: str, data: RepresentativeUpdate, uow: UowDep, write: WriteDep) -> JSONResponse:
    """Change the fields present in the body; the others keep their value."""
    result = await uow.write(
        write, lambda erp: erp.update_representative(code, data, expected_version=write.expected_version)
    )
    return written(result)


@router.delete("/{code}", response_model=RepresentativePublic)
async def delete_representative(code: str, uow: UowDep, write: WriteDep) -> JSONResponse:
    """Soft delete: the representative stays readable with `deleted: true`; their sync stops."""
    result = await uow.write(
        write, lambda erp: erp.delete_representative(code, expected_version=write.expected_version)
    )
    return written(result)
