"""Who is synced: representatives from the ERP (through erp-connector's API) and what to watch for each.

A representative is enabled when active, switched on for sync, in a sales role and with a mailbox
address (R13, R16). For an enabled one, a Graph collection is watched when Outlook changes in it
matter to the ERP: calendar for meetings, the To Do list for tasks and calls, contacts for contacts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from shared.envelope import Kind
from shared.errors import TransientError

PAGE = 1000  # contracts.md: listings take limit ≤ 1000


class DirectoryUnavailable(TransientError):
    """The ERP's user list could not be read; subscriptions are left as they are."""


@dataclass(frozen=True, slots=True)
class Representative:
    """An ERP user (X3 "representative") with the switches that decide which collections are watched."""

    code: str
    email: str
    active: bool = True
    sync_enabled: bool = False
    sales_role: bool = False
    contacts_outlook_to_erp: bool = True
    activities_outlook_to_erp: bool = True
    activities_erp_to_outlook: bool = True
    sync_meetings: bool = True
    sync_tasks: bool = True
    sync_calls: bool = True
    sync_contacts: bool = True
    contacts_two_way: bool = False

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Representative:
        fields = {name: data[name] for name in cls.__slots__ if name in data and data[name] is not None}
        fields["email"] = str(data.get("email") or "").strip().lower()
        return cls(**fields)

    @property
    def enabled(self) -> bool:
        """R13, R16: only active, switched-on representatives in a sales role with a mailbox are synced."""
        return self.active and self.sync_enabled and self.sales_role and bool(self.email)

    def watched_kinds(self) -> frozenset[Kind]:
        """The collections whose Outlook changes must reach sync-core (R16, R17)."""
        if not self.enabled:
            return frozenset()
        kinds: set[Kind] = set()
        if self.activities_outlook_to_erp and self.sync_meetings:
            kinds.add(Kind.EVENT)
        if self.activities_outlook_to_erp and (self.sync_tasks or self.sync_calls):
            kinds.add(Kind.TASK)
        if self.sync_contacts and (self.contacts_outlook_to_erp or self.contacts_two_way):
            kinds.add(Kind.CONTACT)
        return frozenset(kinds)


class UserDirectory(Protocol):
    """Where the list of representatives comes from."""

    async def representatives(self) -> list[Representative]: ...


class ErpDirectory:
    """The representatives listed by erp-connector: `GET /api/v1/representatives` with its bearer token."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout_s,
        )

    async def representatives(self) -> list[Representative]:
        reps: list[Representative] = []
        offset = 0
        while True:
            try:
                response = await self._http.get("/api/v1/representatives", params={"limit": PAGE, "offset": offset})
            except httpx.HTTPError as exc:
                raise DirectoryUnavailable(f"erp-connector at {self.base_url} unreachable: {exc!r}") from exc
            if response.status_code != 200:
                raise DirectoryUnavailable(
                    f"erp-connector answered {response.status_code} to GET /api/v1/representatives"
                )
            page = response.json()
            items = page.get("items") or []
            reps.extend(Representative.from_api(item) for item in items)
            offset += len(items)
            if not items or offset >= int(page.get("total") or 0):
                return reps

    async def aclose(self) -> None:
        await self._http.aclose()
