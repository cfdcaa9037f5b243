"""`/api/v1/partners`: customers, prospects and suppliers with their e-mail domains (R10, R11)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from erp_connector.api.deps import Limit, Offset, UowDep, WriteDep
from erp_connector.api.responses import ERROR_RESPONSES, BoundedBodyRoute, etag, written
from erp_connector.models import PartnerType
from erp_connector.schemas import Page, PartnerCreate, PartnerPublic, PartnerUpdate

router = APIRouter(prefix="/partners", tags=["partners"], responses=ERROR_RESPONSES, route_class=BoundedBodyRoute)


@router.get("", response_model=Page[PartnerPublic])
async def list_partners(
    uow: UowDep,
    type: PartnerType | None = None,
    domain: str | None = None,
    updated_since: AwareDatetime | None = None,
    include_deleted: bool = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[PartnerPublic]:
    return await uow.read(
        lambda erp: erp.list_partners(
            type=type,
            domain=domain,
            updated_since=updated_since,
            include_deleted=include_deleted,
            limit=limit,
            offset=offset,
        )
    )


@router.get("/resolve", response_model=PartnerPublic)
async def resolve_partner(
    uow: UowDep, domain: str = Query(min_length=3, max_length=253, description="e.g. example.com")
) -> PartnerPublic:
    """The customer, else the prospect, else the supplier with this domain (R10); 404 when none."""
    return await uow.read(lambda erp: erp.resolve_partner(domain))


@router.get("/{code}", response_model=PartnerPublic)
async def get_partner(code: str, uow: UowDep, response: Response) -> PartnerPublic:
    partner = await uow.read(lambda erp: erp.get_partner(code))
    response.headers["ETag"] = etag(partner.version)
    return partner


@router.post("", status_code=201, response_model=PartnerPublic)
async def create_partner(data: PartnerCreate, uow: UowDep, write: WriteDep) -> JSONResponse:
    result = await uow.write(write, lambda erp: erp.create_partner(data), status_code=201)
    return written(result, location=f"/api/v1/partners/{data.code}")


@router.put("/{code}", response_model=PartnerPublic)
async def update_partner(code: str, data: PartnerUpdate, uow: UowDep, write: WriteDep) -> JSONResponse:
    result = await uow.write(write, lambda erp: erp.update_partner(code, data, expected_version=write.expected_version))
    return written(result)


@router.delete("/{code}", response_model=PartnerPublic)
async def delete_partner(code: str, uow: UowDep, write: WriteDep) -> JSONResponse:
    result = await uow.write(write, lambda erp: erp.delete_partner(code, expected_version=write.expected_version))
    return written(result)
