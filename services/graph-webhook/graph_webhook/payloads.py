"""Graph's notification payloads: reading the body within a size limit and checking its shape.

Shapes: changeNotificationCollection / changeNotification
(https://learn.microsoft.com/graph/api/resources/changenotificationcollection) and lifecycle
notifications (https://learn.microsoft.com/graph/change-notifications-lifecycle-events).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.requests import Request


class PayloadError(Exception):
    """The body can't be accepted; `status` is the HTTP answer (400 or 413) and the message says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ResourceData(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str | None = Field(default=None, max_length=1000)
    odata_type: str | None = Field(default=None, alias="@odata.type")
    odata_etag: str | None = Field(default=None, alias="@odata.etag")


class Notification(BaseModel):
    """One change or lifecycle notification; which one it is depends on `lifecycleEvent`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    subscription_id: str = Field(alias="subscriptionId", min_length=1, max_length=200)
    client_state: str | None = Field(default=None, alias="clientState", max_length=512)
    tenant_id: str | None = Field(default=None, alias="tenantId", max_length=100)
    change_type: str | None = Field(default=None, alias="changeType", max_length=100)
    resource: str | None = Field(default=None, max_length=2000)
    resource_data: ResourceData | None = Field(default=None, alias="resourceData")
    lifecycle_event: str | None = Field(default=None, alias="lifecycleEvent", max_length=100)

    @property
    def resource_id(self) -> str | None:
        """The changed item's id: `resourceData.id`, else the last segment of `resource`."""
        if self.resource_data and self.resource_data.id:
            return self.resource_data.id
        if self.resource:
            last = self.resource.rstrip("/").rsplit("/", 1)[-1]
            if "('" in last:  # OData key syntax: Messages('id')
                last = last.split("('", 1)[1].rstrip("')")
            return last or None
        return None


class NotificationCollection(BaseModel):
    model_config = ConfigDict(extra="ignore")

    value: list[Notification]


_collection = TypeAdapter(NotificationCollection)

_TEXT: dict[str, Any] = {"type": "string"}
# The body as the OpenAPI document shows it (what `parse_collection` accepts; unknown fields are ignored).
COLLECTION_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["value"],
    "properties": {
        "value": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["subscriptionId"],
                "properties": {
                    "subscriptionId": {"type": "string", "minLength": 1, "maxLength": 200},
                    "clientState": {"type": ["string", "null"], "maxLength": 512},
                    "tenantId": {"type": ["string", "null"], "maxLength": 100},
                    "changeType": {"type": ["string", "null"], "maxLength": 100},
                    "resource": {"type": ["string", "null"], "maxLength": 2000},
                    "resourceData": {
                        "type": ["object", "null"],
                        "properties": {"id": {"type": ["string", "null"], "maxLength": 1000}, "@odata.type": _TEXT},
                    },
                    "lifecycleEvent": {"type": ["string", "null"], "maxLength": 100},
                },
            },
        }
    },
}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadError(413, f"body larger than {limit} bytes")
        except ValueError as exc:
            raise PayloadError(400, "invalid Content-Length") from exc
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadError(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_collection(body: bytes) -> list[Notification]:
    """The notifications of a body, or `PayloadError(400)` naming what is wrong."""
    if not body:
        raise PayloadError(400, "empty body: expected a changeNotificationCollection")
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(400, f"body is not JSON: {exc}") from exc
    try:
        return _collection.validate_python(data).value
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise PayloadError(400, f"not a changeNotificationCollection: {where}: {first['msg']}") from exc
