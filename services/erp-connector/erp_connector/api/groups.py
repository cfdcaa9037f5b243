"""`/api/v1/contact-groups`: groups of contacts outside any partner, incl. the built-in `EXCHANGE` (R10)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from erp_connector.api.deps import Limit, Offset, UowDep, WriteDep
from erp_connector.api.responses import ERROR_RESPONSES, BoundedBodyRoute, etag, written
from erp_connector.schemas import GroupCreate, GroupPublic, GroupUpdate, Page

router = APIRouter(
    prefix="/contact-groups", tags=["contact groups"], responses=ERROR_RESPONSES, route_class=BoundedBodyRoute
)


@router.get("", response_model=Page[GroupPublic])
async def list_groups(
    uow: UowDep,
    updated_since: AwareDatetime | None = None,
    include_deleted: bool = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[GroupPublic]:
    return await uow.read(
        lambda erp: erp.list_groups(
            updated_since=updated_since, include_deleted=include_deleted, limit=limit, offset=offset
        )
    )


@router.get("/{code}", response_model=GroupPublic)
async def get_group(code: str, uow: UowDep, response: Response) -> GroupPublic:
    group = await uow.read(lambda erp: erp.get_group(code))
    response.headers["ETag"] = etag(group.version)
    return group


@router.post("", status_code=201, response_model=GroupPublic)
async def create_group(data: GroupCreate, uow: UowDep, write: WriteDep) -> JSONResponse:
    result = await uow.write(write, lambda erp: erp.create_group(data), status_code=201)
    return written(result, location=f"/api/v1/contact-groups/{data.code}")


@router.put("/{code}", response_model=GroupPublic)
async def update_group(code: str, data: GroupUpdate, uow: UowDep, write: WriteDep) -> JSONResponse:
    result = await uow.write(write, lambda erp: erp.update_group(code, data, expected_version=write.expected_version))
    return written(result)


@router.delete("/{code}", response_model=GroupPublic)
async def delete_group(code: str, uow: UowDep, write: WriteDep) -> JSONResponse:
    result = await uow.write(write, lambda erp: erp.delete_group(code, expected_version=write.expected_version))
    return written(result)
