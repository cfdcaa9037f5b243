"""`/api/v1/contacts`: ERP correspondents and the representatives they are assigned to (R04, R10, R20)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from erp_connector.api.deps import Limit, Offset, RecordId, UowDep, WriteDep
from erp_connector.api.responses import ERROR_RESPONSES, BoundedBodyRoute, etag, written
from erp_connector.models import Origin
from erp_connector.schemas import ContactCreate, ContactPublic, ContactUpdate, Page

router = APIRouter(prefix="/contacts", tags=["contacts"], responses=ERROR_RESPONSES, route_class=BoundedBodyRoute)


@router.get("", response_model=Page[ContactPublic])
async def list_contacts(
    uow: UowDep,
    representative: str | None = None,
    email: str | None = None,
    partner_code: str | None = None,
    group: str | None = None,
    origin: Origin | None = None,
    updated_since: AwareDatetime | None = None,
    include_deleted: bool = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[ContactPublic]:
    return await uow.read(
        lambda erp: erp.list_contacts(
            representative=representative,
            email=email,
            partner_code=partner_code,
            group=group,
            origin=origin,
            updated_since=updated_since,
            include_deleted=include_deleted,
            limit=limit,
            offset=offset,
        )
    )


@router.get("/{contact_id}", response_model=ContactPublic)
async def get_contact(contact_id: RecordId, uow: UowDep, response: Response) -> ContactPublic:
    """A contact, or its tombstone (`deleted: true`)."""
    contact = await uow.read(lambda erp: erp.get_contact(contact_id))
    response.headers["ETag"] = etag(contact.version)
    return contact


@router.post("", status_code=201, response_model=ContactPublic)
async def create_contact(data: ContactCreate, uow: UowDep, write: WriteDep) -> JSONResponse:
    """Create a contact; without partner or group, its e-mail domain picks the partner (R10)."""
    result = await uow.write(write, lambda erp: erp.create_contact(data), status_code=201)
    return written(result, location=f"/api/v1/contacts/{result.body.get('id')}")


@router.put("/{contact_id}", response_model=ContactPublic)
async def update_contact(contact_id: RecordId, data: ContactUpdate, uow: UowDep, write: WriteDep) -> JSONResponse:
    """Change the fields present in the body; the others keep their value."""
    result = await uow.write(
        write, lambda erp: erp.update_contact(contact_id, data, expected_version=write.expected_version)
    )
    return written(result)


@router.delete("/{contact_id}", response_model=ContactPublic)
async def delete_contact(contact_id: RecordId, uow: UowDep, write: WriteDep) -> JSONResponse:
    result = await uow.write(write, lambda erp: erp.delete_contact(contact_id, expected_version=write.expected_version))
    return written(result)


@router.delete("/{contact_id}/representatives/{code}", response_model=ContactPublic)
async def remove_assignment(contact_id: RecordId, code: str, uow: UowDep, write: WriteDep) -> JSONResponse:
    """Unassign one representative: a contact deleted in Outlook only loses that user (R20)."""
    result = await uow.write(
        write, lambda erp: erp.remove_assignment(contact_id, code, expected_version=write.expected_version)
    )
    return written(result)
