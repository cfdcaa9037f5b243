"""`ErpAdapter`: what an ERP must offer for the sync to run against it.

The embedded store (`erp_connector.store.ErpStore`) implements it. A real ERP (Sage X3 web
services, an ERP's REST API) implements the same methods against its own API; see
`docs/erp-adapters.md` for the obligations that go beyond the signatures (versions, tombstones,
change events, error codes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from erp_connector.models import ActivityKind, Origin
from erp_connector.schemas import (
    ActivityCreate,
    ActivityPublic,
    ActivityUpdate,
    ContactCreate,
    ContactPublic,
    ContactUpdate,
    Page,
    PartnerPublic,
    RepresentativePublic,
    RepresentativeUpdate,
)
from erp_connector.store import ErpStore


@runtime_checkable
class ErpAdapter(Protocol):
    """The ERP operations sync-core relies on. Errors are `erp_connector.errors.ErpError`s."""

    # Users and their sync settings (R13, R16, R23)
    async def get_representative(self, code: str) -> RepresentativePublic: ...

    async def representative_by_email(self, email: str) -> RepresentativePublic: ...

    async def update_representative(
        self, code: str, data: RepresentativeUpdate, *, expected_version: int | None = None
    ) -> RepresentativePublic: ...

    # Business partners (R10, R11)
    async def get_partner(self, code: str) -> PartnerPublic: ...

    async def resolve_partner(self, domain: str) -> PartnerPublic: ...

    # Activities: meetings, tasks, calls (R01–R03, R12, R15, R19, R20)
    async def list_activities(
        self,
        *,
        representative: str | None = None,
        kind: ActivityKind | None = None,
        origin: Origin | None = None,
        chrono: str | None = None,
        starts_after: datetime | None = None,
        starts_before: datetime | None = None,
        updated_since: datetime | None = None,
        include_deleted: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[ActivityPublic]: ...

    async def get_activity(self, activity_id: int) -> ActivityPublic: ...

    async def create_activity(self, data: ActivityCreate) -> ActivityPublic: ...

    async def update_activity(
        self, activity_id: int, data: ActivityUpdate, *, expected_version: int | None = None
    ) -> ActivityPublic: ...

    async def delete_activity(self, activity_id: int, *, expected_version: int | None = None) -> ActivityPublic: ...

    # Contacts (R04, R09, R14, R17, R20)
    async def list_contacts(
        self,
        *,
        representative: str | None = None,
        email: str | None = None,
        partner_code: str | None = None,
        group: str | None = None,
        origin: Origin | None = None,
        updated_since: datetime | None = None,
        include_deleted: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[ContactPublic]: ...

    async def get_contact(self, contact_id: int) -> ContactPublic: ...

    async def create_contact(self, data: ContactCreate) -> ContactPublic: ...

    async def update_contact(
        self, contact_id: int, data: ContactUpdate, *, expected_version: int | None = None
    ) -> ContactPublic: ...

    async def delete_contact(self, contact_id: int, *, expected_version: int | None = None) -> ContactPublic: ...

    async def remove_assignment(
        self, contact_id: int, code: str, *, expected_version: int | None = None
    ) -> ContactPublic: ...


def embedded(store: ErpStore) -> ErpAdapter:
    """The embedded store as an adapter (mypy checks here that it implements the protocol)."""
    return store
