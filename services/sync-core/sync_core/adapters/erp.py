"""The erp-connector's REST API, as sync-core uses it (see docs/contracts.md)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from shared.errors import PermanentError, SyncError, TransientError


class ErpError(SyncError):
    """The ERP refused or failed a request; `code` is the ERP's own error code when it gave one."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"ERP {status} {code or ''}: {message}".strip())
        self.status = status
        self.code = code
        self.message = message


class ErpRefused(ErpError, PermanentError):
    """A business rule of the ERP refused the write (overlap R15, unknown partner R11, validation)."""


class ErpConflict(ErpError):
    """The record changed since it was read (412): read again and decide again."""


class ErpNotFound(ErpError):
    pass


class ErpUnavailable(ErpError, TransientError):
    pass


def _error(resp: httpx.Response) -> ErpError:
    code: str | None = None
    message = resp.text[:500]
    try:
        detail = resp.json().get("detail")
        if isinstance(detail, dict):
            code = detail.get("code")
            message = str(detail.get("message", detail))
        elif detail is not None:
            message = str(detail)
    except ValueError:
        pass
    if resp.status_code == 404:
        return ErpNotFound(404, code, message)
    if resp.status_code == 412:
        return ErpConflict(412, code, message)
    if resp.status_code in (400, 409, 422):
        return ErpRefused(resp.status_code, code, message)
    return ErpUnavailable(resp.status_code, code, message)


class ErpClient:
    """Calls the erp-connector; writes carry an idempotency key and the origin `outlook`."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 15.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
        # Business partners (R10, R11) are master data: looked up per item, read at most this often.
        self.partners_cache_s = 0.0
        self._partners: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}

    async def _cached_partner(
        self, key: tuple[str, str], read: Callable[[], Awaitable[dict[str, Any] | None]]
    ) -> dict[str, Any] | None:
        if self.partners_cache_s > 0:
            hit = self._partners.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.partners_cache_s:
                return hit[1]
        value = await read()
        if self.partners_cache_s > 0:
            if len(self._partners) > 10_000:
                self._partners.clear()
            self._partners[key] = (time.monotonic(), value)
        return value

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        if_match: int | None = None,
    ) -> Any:
        headers: dict[str, str] = {}
        if method != "GET":
            headers["X-Change-Origin"] = "outlook"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if if_match is not None:
            headers["If-Match"] = str(if_match)
        try:
            resp = await self._http.request(method, path, json=json, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise ErpUnavailable(0, None, f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 400:
            raise _error(resp)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    async def ping(self) -> None:
        await self._call("GET", "/representatives", params={"limit": 1})

    async def representative_by_email(self, email: str) -> dict[str, Any] | None:
        try:
            return await self._call("GET", f"/representatives/by-email/{email}")  # type: ignore[no-any-return]
        except ErpNotFound:
            return None

    async def set_last_sync_times(self, code: str, times: dict[str, str]) -> None:
        """R23: the representative's last sync times, kept in the ERP too (no new version)."""
        await self._call("PUT", f"/representatives/{code}", json=times)

    async def representatives(self) -> list[dict[str, Any]]:
        page = await self._call("GET", "/representatives", params={"limit": 1000})
        return list(page["items"])

    async def get(self, collection: str, erp_id: str) -> dict[str, Any] | None:
        """An activity or contact, tombstones included; None when it never existed."""
        try:
            return await self._call("GET", f"/{collection}/{erp_id}")  # type: ignore[no-any-return]
        except ErpNotFound:
            return None

    async def list_all(self, collection: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = await self._call("GET", f"/{collection}", params={**params, "limit": 1000, "offset": offset})
            items.extend(page["items"])
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return items

    async def create(self, collection: str, body: dict[str, Any], *, key: str) -> dict[str, Any]:
        return await self._call("POST", f"/{collection}", json=body, idempotency_key=key)  # type: ignore[no-any-return]

    async def update(
        self, collection: str, erp_id: str, body: dict[str, Any], *, key: str, version: int | None
    ) -> dict[str, Any]:
        return await self._call(  # type: ignore[no-any-return]
            "PUT", f"/{collection}/{erp_id}", json=body, idempotency_key=key, if_match=version
        )

    async def delete(self, collection: str, erp_id: str, *, key: str, version: int | None = None) -> None:
        try:
            await self._call("DELETE", f"/{collection}/{erp_id}", idempotency_key=key, if_match=version)
        except ErpNotFound:
            return

    async def remove_assignment(self, contact_id: str, representative: str, *, key: str) -> None:
        try:
            await self._call("DELETE", f"/contacts/{contact_id}/representatives/{representative}", idempotency_key=key)
        except ErpNotFound:
            return

    async def partner(self, code: str) -> dict[str, Any] | None:
        async def read() -> dict[str, Any] | None:
            try:
                return await self._call("GET", f"/partners/{code}")  # type: ignore[no-any-return]
            except ErpNotFound:
                return None

        return await self._cached_partner(("code", code), read)

    async def partner_for_domain(self, domain: str) -> dict[str, Any] | None:
        async def read() -> dict[str, Any] | None:
            try:
                return await self._call("GET", "/partners/resolve", params={"domain": domain})  # type: ignore[no-any-return]
            except ErpNotFound:
                return None

        return await self._cached_partner(("domain", domain.lower()), read)

    async def contacts_by_email(self, email: str) -> list[dict[str, Any]]:
        page = await self._call("GET", "/contacts", params={"email": email, "limit": 10})
        return list(page["items"])
