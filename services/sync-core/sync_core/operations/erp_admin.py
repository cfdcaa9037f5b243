"""The erp-connector API as the console uses it: representatives and their switches, listings with paging.

Separate from `sync_core.adapters.erp.ErpClient` (the sync's own writes, marked as coming from
Outlook): an admin's change is an ERP-side change and is sent without `X-Change-Origin`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from sync_core.operations.errors import Conflict, Invalid, NotFound, OpsError, Unavailable

if TYPE_CHECKING:
    from sync_core.app import Runtime


def _detail(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail")
    except ValueError:
        return resp.text[:300]
    if isinstance(detail, dict):
        return str(detail.get("message") or detail)[:500]
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(str(d.get("msg", d)) for d in detail if isinstance(d, dict))[:500] or str(detail)[:500]
    return str(detail)[:500]


class ErpAdmin:
    """Calls erp-connector with its API token; errors become `OpsError`s that name the ERP's answer."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        version: int | None = None,
    ) -> Any:
        headers = {"If-Match": str(version)} if version is not None else {}
        try:
            resp = await self.http.request(method, path, params=params, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise Unavailable(f"ERP (erp-connector) not reachable: {type(exc).__name__}: {exc}") from exc
        if resp.status_code == 404:
            raise NotFound(f"ERP: {_detail(resp)}")
        if resp.status_code == 412:
            raise Conflict("the ERP record was changed meanwhile by someone else: reload and try again")
        if resp.status_code in (400, 409, 422):
            raise Invalid(f"ERP refused: {_detail(resp)}")
        if resp.status_code == 401:
            raise Unavailable("ERP refused sync-core's token (ERP_API_TOKEN)")
        if resp.status_code >= 400:
            raise Unavailable(f"ERP answered {resp.status_code}: {_detail(resp)}")
        return resp.json() if resp.content else None

    async def ping(self) -> None:
        await self._call("GET", "/representatives", params={"limit": 1})

    async def page(self, collection: str, **params: Any) -> dict[str, Any]:
        """One page of a listing: `{"items", "total", "limit", "offset"}`."""
        clean = {k: v for k, v in params.items() if v is not None}
        return await self._call("GET", f"/{collection}", params=clean)  # type: ignore[no-any-return]

    async def all(self, collection: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = await self.page(collection, **params, limit=1000, offset=offset)
            items.extend(page["items"])
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return items

    async def get(self, collection: str, key: str) -> dict[str, Any]:
        return await self._call("GET", f"/{collection}/{quote(key, safe='')}")  # type: ignore[no-any-return]

    async def representative(self, ref: str) -> dict[str, Any]:
        """A representative by code, or by mailbox address when `ref` has an `@`."""
        ref = ref.strip()
        if not ref:
            raise Invalid("name a user by representative code or mailbox address")
        try:
            if "@" in ref:
                return await self.get("representatives/by-email", ref)
            return await self.get("representatives", ref.upper())
        except NotFound:
            raise NotFound(f"no ERP representative with code or mailbox {ref!r}") from None

    async def update_representative(self, code: str, changes: dict[str, Any], *, version: int | None) -> dict[str, Any]:
        return await self._call(  # type: ignore[no-any-return]
            "PUT", f"/representatives/{quote(code, safe='')}", json=changes, version=version
        )

    async def delete(self, collection: str, key: str) -> None:
        await self._call("DELETE", f"/{collection}/{quote(key, safe='')}")


@asynccontextmanager
async def erp_admin(rt: Runtime) -> AsyncIterator[ErpAdmin]:
    """An `ErpAdmin` for the duration of one operation."""
    s = rt.settings
    async with httpx.AsyncClient(
        base_url=s.erp_connector_url.rstrip("/") + "/api/v1",
        headers={"Authorization": f"Bearer {s.erp_api_token.get_secret_value()}"},
        timeout=s.ops_timeout_s,
    ) as http:
        yield ErpAdmin(http)


__all__ = ["ErpAdmin", "OpsError", "erp_admin"]
