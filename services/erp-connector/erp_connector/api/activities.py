"""`/api/v1/activities`: meetings, tasks and calls (R01–R03, R12, R15)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from erp_connector.api.deps import Limit, Offset, RecordId, UowDep, WriteDep
from erp_connector.api.responses import ERROR_RESPONSES, BoundedBodyRoute, etag, written
from erp_connector.models import ActivityKind, Origin
from erp_connector.schemas import ActivityCreate, ActivityPublic, ActivityUpdate, Page

router = APIRouter(prefix="/activities", tags=["activities"], responses=ERROR_RESPONSES, route_class=BoundedBodyRoute)


@router.get("", response_model=Page[ActivityPublic])
async def list_activities(
    uow: UowDep,
    representative: str | None = None,
    kind: ActivityKind | None = None,
    origin: Origin | None = None,
    chrono: str | None = None,
    starts_after: AwareDatetime | None = None,
    starts_before: AwareDatetime | None = None,
    updated_since: AwareDatetime | None = None,
    include_deleted: bool = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[ActivityPublic]:
    """Activities by owner, kind, origin; `starts_after`/`starts_before` bound the start (or due date)."""
    return await uow.read(
        lambda erp: erp.list_activities(
            representative=representative,
            kind=kind,
            origin=origin,
            chrono=chrono,
            starts_after=starts_after,
            starts_before=starts_before,
            updated_since=updated_since,
            include_deleted=include_deleted,
            limit=limit,
            offset=offset,
        )
    )


@router.get("/{activity_id}", response_model=ActivityPublic)
async def get_activity(activity_id: RecordId, uow: UowDep, response: Response) -> ActivityPublic:
    """An activity, or its tombstone (`deleted: true`)."""
    activity = await uow.read(lambda erp: erp.get_activity(activity_id))
    response.headers["ETag"] = etag(activity.version)
    return activity


@router.post("", status_code=201, response_model=ActivityPublic)
async def create_activity(data: ActivityCreate, uow: UowDep, write: WriteDep) -> JSONResponse:
    """Create an activity; the ERP gives it a chrono (MTG…, TSK…, CLL…) unless one is sent."""
    result = await uow.write(write, lambda erp: erp.create_activity(data), status_code=201)
    return written(result, location=f"/api/v1/activities/{result.body.get('id')}")


@router.put("/{activity_id}", response_model=ActivityPublic)
async def update_activity(activity_id: RecordId, data: ActivityUpdate, uow: UowDep, write: WriteDep) -> JSONResponse:
    """Change the fields present in the body; the others keep their value."""
    result = await uow.write(
        write, lambda erp: erp.update_activity(activity_id, data, expected_version=write.expected_version)
    )
    return written(result)


@router.delete("/{activity_id}", response_model=ActivityPublic)
async def delete_activity(activity_id: RecordId, uow: UowDep, write: WriteDep) -> JSONResponse:
    """Soft delete: the activity stays readable as a tombstone and its mirror is deleted (R19)."""
    result = await uow.write(
        write, lambda erp: erp.delete_activity(activity_id, expected_version=write.expected_version)
    )
    return written(result)
