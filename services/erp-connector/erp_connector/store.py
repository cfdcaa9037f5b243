"""The embedded ERP/CRM: representatives, partners, contact groups, contacts and activities.

An `ErpStore` works inside one transaction (its session). Every write validates as the ERP
would (R11 partner codes, R13 sales role, R15 overlapping meetings), bumps the record's version,
and appends its `erp.changed` / `user.changed` messages to the outbox in the same transaction.
Deletes are soft: the record stays as a tombstone (`deleted: true`) so sync can propagate them.
A write that changes nothing bumps nothing and publishes nothing, so a write-back made by
sync-core with the values already stored does not echo (R22).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import bindparam, case, func, insert, update
from sqlmodel import SQLModel, col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from erp_connector import outbox
from erp_connector.errors import (
    AlreadyExists,
    Deleted,
    InvalidData,
    NotFound,
    Overlap,
    SalesRoleRequired,
    UnknownPartner,
    UnknownReference,
    VersionConflict,
)
from erp_connector.models import (
    CHRONO_PREFIX,
    EXCHANGE_GROUP,
    Activity,
    ActivityKind,
    BusinessPartner,
    ChronoCounter,
    Contact,
    ContactAssignment,
    ContactEmail,
    ContactGroup,
    Origin,
    PartnerDomain,
    PartnerType,
    Representative,
    chrono_number,
    chrono_of,
    utcnow,
)
from erp_connector.schemas import (
    ActivityCreate,
    ActivityPublic,
    ActivityUpdate,
    ContactCreate,
    ContactPublic,
    ContactUpdate,
    GroupCreate,
    GroupPublic,
    GroupUpdate,
    Page,
    PartnerCreate,
    PartnerPublic,
    PartnerUpdate,
    RepresentativeCreate,
    RepresentativePublic,
    RepresentativeUpdate,
)
from shared.envelope import Kind, MessageType

Row = TypeVar("Row", bound=SQLModel)

# ERP meetings are calendar events on the bus (contracts.md).
BUS_KIND = {ActivityKind.MEETING: Kind.EVENT, ActivityKind.TASK: Kind.TASK, ActivityKind.CALL: Kind.CALL}
# R10: a domain names a customer first, then a prospect, then a supplier.
PARTNER_PRECEDENCE = {PartnerType.CUSTOMER.value: 0, PartnerType.PROSPECT.value: 1, PartnerType.SUPPLIER.value: 2}
# Fields of a representative that graph-webhook's subscriptions depend on (not the last-sync times).
REPRESENTATIVE_SWITCHES = (
    "contacts_outlook_to_erp",
    "activities_outlook_to_erp",
    "activities_erp_to_outlook",
    "sync_meetings",
    "sync_tasks",
    "sync_calls",
    "sync_contacts",
    "contacts_two_way",
    "conflict_policy",
    "window_days_back",
    "window_days_ahead",
)
MAX_LIMIT = 1000

# Statements of every activity write, built once: building one costs more than SQLite takes to run
# it. The counter's is a Core UPDATE of the table (not the ORM's bulk UPDATE, which would also look
# for counter objects to synchronise in the session).
_COUNTERS = ChronoCounter.__table__  # type: ignore[attr-defined]
_TAKE_NUMBER = (
    update(_COUNTERS)
    .where(_COUNTERS.c.prefix == bindparam("of_prefix"))
    .values(last=_COUNTERS.c.last + 1)
    .returning(_COUNTERS.c.last)
)
_REPRESENTATIVES = Representative.__table__  # type: ignore[attr-defined]
_PARTNERS = BusinessPartner.__table__  # type: ignore[attr-defined]
# An activity's references, checked as rows, not ORM objects: building an object costs several
# times the read (`session.get` 140–170 µs against 22–34 µs, docs/benchmarks.md session 8).
_REPRESENTATIVE_EMAIL = select(_REPRESENTATIVES.c.email, _REPRESENTATIVES.c.deleted).where(
    _REPRESENTATIVES.c.code == bindparam("of_code")
)
_PARTNER_DELETED = select(_PARTNERS.c.deleted).where(_PARTNERS.c.code == bindparam("of_code"))
_ACTIVITIES = Activity.__table__  # type: ignore[attr-defined]
_ACTIVITY_COLUMNS = [c.name for c in _ACTIVITIES.columns if c.name != "id"]
# A new activity is inserted as a row (every column has its value in Python already), not flushed
# as an ORM object: the unit of work's flush cost several times the INSERT (ADR 0054).
_INSERT_ACTIVITY = insert(_ACTIVITIES).returning(_ACTIVITIES.c.id)
# On the table's columns (a Core statement: an ORM-enabled one costs twice as much to run).
_A = _ACTIVITIES.c
_OVERLAPPING_MEETING = (
    select(_A.id, _A.chrono, _A.start, _A.end)
    .where(
        _A.kind == ActivityKind.MEETING.value,
        _A.representative == bindparam("representative"),
        _A.deleted == False,  # noqa: E712
        _A.all_day == False,  # noqa: E712
        _A.start < bindparam("end"),
        _A.end > bindparam("start"),
        _A.id != bindparam("other_than"),  # ids start at 1: 0 for a new meeting
    )
    .limit(1)
)


def representative_public(row: Representative) -> RepresentativePublic:
    return RepresentativePublic.model_validate(row, from_attributes=True)


def partner_public(row: BusinessPartner) -> PartnerPublic:
    return PartnerPublic.model_validate(row, from_attributes=True)


def group_public(row: ContactGroup) -> GroupPublic:
    return GroupPublic.model_validate(row, from_attributes=True)


def activity_public(row: Activity) -> ActivityPublic:
    return ActivityPublic.model_validate(row, from_attributes=True)


def contact_public(row: Contact, representatives: Sequence[str]) -> ContactPublic:
    assert row.id is not None
    return ContactPublic(
        id=row.id,
        given_name=row.given_name,
        surname=row.surname,
        emails=list(row.emails),
        business_phones=list(row.business_phones),
        mobile_phone=row.mobile_phone,
        job_title=row.job_title,
        partner_code=row.partner_code,
        group=row.group_code,
        representatives=sorted(representatives),
        origin=Origin(row.origin),
        version=row.version,
        updated_at=row.updated_at,
        deleted=row.deleted,
    )


def sync_enabled(rep: Representative) -> bool:
    """Whether the representative's mailbox is synced: enabled, active, with a sales role (R13, R16)."""
    return rep.sync_enabled and rep.active and rep.sales_role and not rep.deleted


def _unique_lower(values: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        if value.lower() not in seen:
            seen.add(value.lower())
            out.append(value)
    return out


def _mirror_due(row: Activity, changed: set[str]) -> None:
    """Tasks and calls have one deadline, sent as `due` or as `end`: keep both equal."""
    if row.kind == ActivityKind.MEETING:
        return
    if "due" in changed and "end" not in changed:
        row.end = row.due
    elif "end" in changed and "due" not in changed:
        row.due = row.end


def _unknown_representative(code: str) -> UnknownReference:
    return UnknownReference("unknown_representative", f"representative {code} does not exist")


def _unknown_partner(code: str) -> UnknownPartner:
    return UnknownPartner(f"business partner #{code}# does not exist in the ERP (R11)", partner_code=code)


def _is_midnight(value: datetime | None) -> bool:
    return value is None or (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0)


class ErpStore:
    """The embedded ERP, inside one transaction."""

    def __init__(self, session: AsyncSession, *, refuse_overlaps: bool = True, origin: Origin = Origin.ERP) -> None:
        self.session = session
        self.refuse_overlaps = refuse_overlaps
        # Who makes this write: `outlook` when sync-core applies an Outlook change (X-Change-Origin).
        self.origin = origin

    # Plumbing ------------------------------------------------------------------------------

    async def _get(self, model: type[Row], key: Any, what: str, *, lock: bool = False) -> Row:
        row = await self.session.get(model, key, with_for_update=lock)
        if row is None:
            raise NotFound(f"{what} {key} does not exist")
        return row

    async def _page(
        self, query: SelectOfScalar[Row], order: Any, limit: int, offset: int
    ) -> tuple[list[Row], int, int, int]:
        limit = max(1, min(limit, MAX_LIMIT))
        offset = max(0, offset)
        total = (await self.session.exec(select(func.count()).select_from(query.subquery()))).one()
        rows = list((await self.session.exec(query.order_by(order).limit(limit).offset(offset))).all())
        return rows, int(total), limit, offset

    @staticmethod
    def _check_version(current: int, expected: int | None, what: str, public: BaseModel) -> None:
        if expected is not None and expected != current:
            raise VersionConflict(
                f"{what} is at version {current}, not {expected}: read it again and resolve",
                current=public.model_dump(mode="json"),
            )

    @staticmethod
    def _touch(row: Any) -> None:
        row.version += 1
        row.updated_at = utcnow()

    @staticmethod
    def _filters(
        model: Any, query: SelectOfScalar[Row], updated_since: datetime | None, include_deleted: bool
    ) -> SelectOfScalar[Row]:
        if updated_since is not None:
            query = query.where(model.updated_at >= updated_since)
        if not include_deleted:
            query = query.where(model.deleted == False)  # noqa: E712
        return query

    # Representatives -----------------------------------------------------------------------

    async def get_representative(self, code: str) -> RepresentativePublic:
        return representative_public(await self._get(Representative, code.upper(), "representative"))

    async def representative_by_email(self, email: str) -> RepresentativePublic:
        row = (
            await self.session.exec(select(Representative).where(Representative.email_lower == email.strip().lower()))
        ).first()
        if row is None or row.deleted:
            raise NotFound("no representative has that e-mail address")
        return representative_public(row)

    async def list_representatives(
        self,
        *,
        active: bool | None = None,
        enabled: bool | None = None,
        email: str | None = None,
        updated_since: datetime | None = None,
        include_deleted: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[RepresentativePublic]:
        query = self._filters(Representative, select(Representative), updated_since, include_deleted)
        if active is not None:
            query = query.where(Representative.active == active)
        if enabled is not None:
            query = query.where(Representative.sync_enabled == enabled)
        if email is not None:
            query = query.where(Representative.email_lower == email.strip().lower())
        rows, total, limit, offset = await self._page(query, col(Representative.code), limit, offset)
        return Page(items=[representative_public(r) for r in rows], total=total, limit=limit, offset=offset)

    async def create_representative(self, data: RepresentativeCreate) -> RepresentativePublic:
        if await self.session.get(Representative, data.code) is not None:
            raise AlreadyExists(f"representative {data.code} already exists")
        await self._email_is_free(data.email, data.code)
        row = Representative(**data.model_dump(), email_lower=data.email.lower())
        self._refuse_enabled_without_sales_role(row)
        self.session.add(row)
        await self.session.flush()
        self._user_changed(row, row.email)
        return representative_public(row)

    async def update_representative(
        self, code: str, data: RepresentativeUpdate, *, expected_version: int | None = None
    ) -> RepresentativePublic:
        row = await self._get(Representative, code.upper(), "representative", lock=True)
        if row.deleted:
            raise Deleted(f"representative {row.code} is deleted")
        self._check_version(row.version, expected_version, f"representative {row.code}", representative_public(row))
        # null means "unchanged", except for the last-sync times, which can be cleared
        nullable = {"last_sync_outlook_to_erp", "last_sync_erp_to_outlook"}
        changes = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None or k in nullable}
        before = representative_public(row).model_dump()
        old_email = row.email
        if "email" in changes and changes["email"].lower() != row.email_lower:
            await self._email_is_free(changes["email"], row.code)
        for field, value in changes.items():
            setattr(row, field, value)
        row.email_lower = row.email.lower()
        self._refuse_enabled_without_sales_role(row)
        after = representative_public(row).model_dump()
        if after == before:
            return representative_public(row)
        if set(changes) <= nullable:
            # Only the last-sync times (R23), written by sync-core as it works: not an edit of the
            # record, so its version stays and an admin's form open on it is not made stale.
            await self.session.flush()
            return representative_public(row)
        self._touch(row)
        await self.session.flush()
        if any(
            before[f] != after[f]
            for f in ("email", "name", "sales_role", "active", "sync_enabled", *REPRESENTATIVE_SWITCHES)
        ):
            if old_email.lower() != row.email_lower:
                # The old mailbox stops syncing: graph-webhook drops its subscriptions.
                self._user_changed(row, old_email, enabled=False)
            self._user_changed(row, row.email)
        return representative_public(row)

    async def delete_representative(self, code: str, *, expected_version: int | None = None) -> RepresentativePublic:
        row = await self._get(Representative, code.upper(), "representative", lock=True)
        if row.deleted:
            return representative_public(row)
        self._check_version(row.version, expected_version, f"representative {row.code}", representative_public(row))
        row.deleted = True
        self._touch(row)
        await self.session.flush()
        self._user_changed(row, row.email, enabled=False)
        return representative_public(row)

    async def _email_is_free(self, email: str, code: str) -> None:
        other = (
            await self.session.exec(select(Representative).where(Representative.email_lower == email.lower()))
        ).first()
        if other is not None and other.code != code:
            raise AlreadyExists(f"representative {other.code} already has that e-mail address")

    @staticmethod
    def _refuse_enabled_without_sales_role(row: Representative) -> None:
        if row.sync_enabled and not row.sales_role:
            raise SalesRoleRequired(
                f"representative {row.code} has no sales role and cannot be enabled for sync (R13): "
                "give them the sales role first"
            )

    def _user_changed(self, row: Representative, email: str, *, enabled: bool | None = None) -> None:
        outbox.record(
            self.session,
            type=MessageType.USER_CHANGED,
            user=email,
            kind=None,
            payload={
                "code": row.code,
                "email": email.lower(),
                "enabled": sync_enabled(row) if enabled is None else enabled,
                "switches": {f: getattr(row, f) for f in REPRESENTATIVE_SWITCHES},
                "version": row.version,
            },
        )

    async def _active_representative(self, code: str) -> Representative:
        row = await self.session.get(Representative, code)
        if row is None or row.deleted:
            raise _unknown_representative(code)
        return row

    async def _active_email(self, code: str) -> str:
        """The e-mail of an active representative, read as a row (`_REPRESENTATIVE_EMAIL`)."""
        found = (await self.session.exec(_REPRESENTATIVE_EMAIL, params={"of_code": code})).first()  # type: ignore[call-overload]
        if found is None or found[1]:
            raise _unknown_representative(code)
        return str(found[0])

    # Business partners ---------------------------------------------------------------------

    async def get_partner(self, code: str) -> PartnerPublic:
        return partner_public(await self._get(BusinessPartner, code.upper(), "business partner"))

    async def list_partners(
        self,
        *,
        type: PartnerType | None = None,
        domain: str | None = None,
        updated_since: datetime | None = None,
        include_deleted: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[PartnerPublic]:
        query = self._filters(BusinessPartner, select(BusinessPartner), updated_since, include_deleted)
        if type is not None:
            query = query.where(BusinessPartner.type == type.value)
        if domain is not None:
            query = query.where(
                col(BusinessPartner.code).in_(
                    select(PartnerDomain.partner_code).where(PartnerDomain.domain == domain.strip().lower())
                )
            )
        rows, total, limit, offset = await self._page(query, col(BusinessPartner.code), limit, offset)
        return Page(items=[partner_public(r) for r in rows], total=total, limit=limit, offset=offset)

    async def resolve_partner(self, domain: str) -> PartnerPublic:
        """The customer, else prospect, else supplier that owns an e-mail domain (R10)."""
        row = await self._partner_of_domain(domain)
        if row is None:
            raise NotFound(f"no business partner has the domain {domain.strip().lower()}")
        return partner_public(row)

    async def _partner_of_domain(self, domain: str) -> BusinessPartner | None:
        precedence = case(PARTNER_PRECEDENCE, value=BusinessPartner.type, else_=9)
        query = (
            select(BusinessPartner)
            .join(PartnerDomain, col(PartnerDomain.partner_code) == col(BusinessPartner.code))
            .where(PartnerDomain.domain == domain.strip().lower(), BusinessPartner.deleted == False)  # noqa: E712
            .order_by(precedence, col(BusinessPartner.code))
            .limit(1)
        )
        return (await self.session.exec(query)).first()

    async def create_partner(self, data: PartnerCreate) -> PartnerPublic:
        if await self.session.get(BusinessPartner, data.code) is not None:
            raise AlreadyExists(f"business partner {data.code} already exists")
        row = BusinessPartner(code=data.code, name=data.name, type=data.type.value, domains=_unique_lower(data.domains))
        self.session.add(row)
        await self.session.flush()
        await self._index_domains(row)
        return partner_public(row)

    async def update_partner(
        self, code: str, data: PartnerUpdate, *, expected_version: int | None = None
    ) -> PartnerPublic:
        row = await self._get(BusinessPartner, code.upper(), "business partner", lock=True)
        if row.deleted:
            raise Deleted(f"business partner {row.code} is deleted")
        self._check_version(row.version, expected_version, f"business partner {row.code}", partner_public(row))
        before = partner_public(row).model_dump()
        changes = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}
        if "name" in changes:
            row.name = changes["name"]
        if "type" in changes:
            row.type = PartnerType(changes["type"]).value
        if "domains" in changes:
            row.domains = _unique_lower(changes["domains"])
        if partner_public(row).model_dump() == before:
            return partner_public(row)
        self._touch(row)
        await self._index_domains(row)
        return partner_public(row)

    async def delete_partner(self, code: str, *, expected_version: int | None = None) -> PartnerPublic:
        row = await self._get(BusinessPartner, code.upper(), "business partner", lock=True)
        if row.deleted:
            return partner_public(row)
        self._check_version(row.version, expected_version, f"business partner {row.code}", partner_public(row))
        row.deleted = True
        self._touch(row)
        await self.session.flush()
        return partner_public(row)

    async def _index_domains(self, row: BusinessPartner) -> None:
        await self.session.exec(delete(PartnerDomain).where(col(PartnerDomain.partner_code) == row.code))
        for domain in row.domains:
            self.session.add(PartnerDomain(domain=domain, partner_code=row.code))
        await self.session.flush()

    async def _known_partner(self, code: str) -> BusinessPartner:
        row = await self.session.get(BusinessPartner, code)
        if row is None or row.deleted:
            raise _unknown_partner(code)
        return row

    async def _partner_is_known(self, code: str) -> None:
        """`_known_partner` read as a row (`_PARTNER_DELETED`), for a reference only."""
        deleted = (await self.session.exec(_PARTNER_DELETED, params={"of_code": code})).first()  # type: ignore[call-overload]
        if deleted is None or deleted:  # one column: a scalar, None when there is no such partner
            raise _unknown_partner(code)

    # Contact groups ------------------------------------------------------------------------

    async def get_group(self, code: str) -> GroupPublic:
        return group_public(await self._get(ContactGroup, code.upper(), "contact group"))

    async def list_groups(
        self, *, include_deleted: bool = False, updated_since: datetime | None = None, limit: int = 100, offset: int = 0
    ) -> Page[GroupPublic]:
        query = self._filters(ContactGroup, select(ContactGroup), updated_since, include_deleted)
        rows, total, limit, offset = await self._page(query, col(ContactGroup.code), limit, offset)
        return Page(items=[group_public(r) for r in rows], total=total, limit=limit, offset=offset)

    async def create_group(self, data: GroupCreate) -> GroupPublic:
        if await self.session.get(ContactGroup, data.code) is not None:
            raise AlreadyExists(f"contact group {data.code} already exists")
        row = ContactGroup(code=data.code, name=data.name)
        self.session.add(row)
        await self.session.flush()
        return group_public(row)

    async def update_group(self, code: str, data: GroupUpdate, *, expected_version: int | None = None) -> GroupPublic:
        row = await self._get(ContactGroup, code.upper(), "contact group", lock=True)
        if row.deleted:
            raise Deleted(f"contact group {row.code} is deleted")
        self._check_version(row.version, expected_version, f"contact group {row.code}", group_public(row))
        if data.name is not None and data.name != row.name:
            row.name = data.name
            self._touch(row)
            await self.session.flush()
        return group_public(row)

    async def delete_group(self, code: str, *, expected_version: int | None = None) -> GroupPublic:
        row = await self._get(ContactGroup, code.upper(), "contact group", lock=True)
        if row.builtin:
            raise InvalidData(f"contact group {row.code} is built in and cannot be deleted")
        if row.deleted:
            return group_public(row)
        self._check_version(row.version, expected_version, f"contact group {row.code}", group_public(row))
        row.deleted = True
        self._touch(row)
        await self.session.flush()
        return group_public(row)

    async def _known_group(self, code: str) -> ContactGroup:
        row = await self.session.get(ContactGroup, code)
        if row is None or row.deleted:
            raise UnknownReference("unknown_group", f"contact group {code} does not exist")
        return row

    # Contacts ------------------------------------------------------------------------------

    async def get_contact(self, contact_id: int) -> ContactPublic:
        row = await self._get(Contact, contact_id, "contact")
        return contact_public(row, await self._assigned(row))

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
    ) -> Page[ContactPublic]:
        query = self._filters(Contact, select(Contact), updated_since, include_deleted)
        if representative is not None:
            query = query.where(
                col(Contact.id).in_(
                    select(ContactAssignment.contact_id).where(
                        ContactAssignment.representative_code == representative.upper()
                    )
                )
            )
        if email is not None:
            query = query.where(
                col(Contact.id).in_(select(ContactEmail.contact_id).where(ContactEmail.email == email.strip().lower()))
            )
        if partner_code is not None:
            query = query.where(Contact.partner_code == partner_code.upper())
        if group is not None:
            query = query.where(Contact.group_code == group.upper())
        if origin is not None:
            query = query.where(Contact.origin == origin.value)
        rows, total, limit, offset = await self._page(query, col(Contact.id), limit, offset)
        assigned = await self._assigned_many([r.id for r in rows if r.id is not None])
        items = [contact_public(r, assigned.get(r.id or 0, [])) for r in rows]
        return Page(items=items, total=total, limit=limit, offset=offset)

    async def create_contact(self, data: ContactCreate) -> ContactPublic:
        row = Contact(
            given_name=data.given_name,
            surname=data.surname,
            emails=_unique_lower(data.emails),
            business_phones=list(data.business_phones),
            mobile_phone=data.mobile_phone,
            job_title=data.job_title,
            partner_code=data.partner_code,
            group_code=data.group,
            origin=Origin.OUTLOOK.value if Origin.OUTLOOK in (self.origin, data.origin) else Origin.ERP.value,
        )
        await self._place_contact(row)
        representatives = _unique_lower(data.representatives)
        reps = [await self._active_representative(code) for code in representatives]
        self.session.add(row)
        await self.session.flush()
        assert row.id is not None
        await self._index_emails(row)
        for rep in reps:
            self.session.add(ContactAssignment(contact_id=row.id, representative_code=rep.code))
        await self.session.flush()
        public = contact_public(row, representatives)
        self._contact_changed(public, "created", reps, [])
        return public

    async def update_contact(
        self, contact_id: int, data: ContactUpdate, *, expected_version: int | None = None
    ) -> ContactPublic:
        row = await self._get(Contact, contact_id, "contact", lock=True)
        if row.deleted:
            raise Deleted(f"contact {contact_id} is deleted")
        assigned = await self._assigned(row)
        before = contact_public(row, assigned)
        self._check_version(row.version, expected_version, f"contact {contact_id}", before)
        changes = data.model_dump(exclude_unset=True)
        for field in ("given_name", "surname", "mobile_phone", "job_title"):
            if field in changes:
                setattr(row, field, changes[field])
        if changes.get("emails") is not None:
            row.emails = _unique_lower(changes["emails"])
        if changes.get("business_phones") is not None:
            row.business_phones = list(changes["business_phones"])
        if "partner_code" in changes or "group" in changes:
            # A contact belongs to a partner or to a group: naming one drops the other.
            row.partner_code = changes.get("partner_code")
            row.group_code = changes.get("group")
            await self._place_contact(row)
        new_assigned = assigned if changes.get("representatives") is None else _unique_lower(changes["representatives"])
        # Only newly assigned representatives must exist now; one deleted since keeps the contact editable.
        reps = [
            await (
                self._get(Representative, code, "representative")
                if code in assigned
                else self._active_representative(code)
            )
            for code in new_assigned
        ]
        after = contact_public(row, new_assigned)
        if after.model_dump() == before.model_dump():
            return before
        self._touch(row)
        await self._index_emails(row)
        removed = [code for code in assigned if code not in new_assigned]
        added = [code for code in new_assigned if code not in assigned]
        if removed:
            await self.session.exec(
                delete(ContactAssignment).where(
                    col(ContactAssignment.contact_id) == contact_id,
                    col(ContactAssignment.representative_code).in_(removed),
                )
            )
        for code in added:
            self.session.add(ContactAssignment(contact_id=contact_id, representative_code=code))
        await self.session.flush()
        public = contact_public(row, new_assigned)
        self._contact_changed(
            public, "updated", reps, [await self._get(Representative, c, "representative") for c in removed]
        )
        return public

    async def delete_contact(self, contact_id: int, *, expected_version: int | None = None) -> ContactPublic:
        row = await self._get(Contact, contact_id, "contact", lock=True)
        assigned = await self._assigned(row)
        if row.deleted:
            return contact_public(row, assigned)
        self._check_version(row.version, expected_version, f"contact {contact_id}", contact_public(row, assigned))
        row.deleted = True
        self._touch(row)
        await self.session.flush()
        public = contact_public(row, assigned)
        reps = [await self._get(Representative, code, "representative") for code in assigned]
        self._contact_changed(public, "deleted", reps, [])
        return public

    async def remove_assignment(
        self, contact_id: int, code: str, *, expected_version: int | None = None
    ) -> ContactPublic:
        """Unassign one representative from a contact: what deleting a contact in Outlook does (R20)."""
        row = await self._get(Contact, contact_id, "contact", lock=True)
        assigned = await self._assigned(row)
        code = code.upper()
        self._check_version(row.version, expected_version, f"contact {contact_id}", contact_public(row, assigned))
        if code not in assigned:
            return contact_public(row, assigned)
        await self.session.exec(
            delete(ContactAssignment).where(
                col(ContactAssignment.contact_id) == contact_id, col(ContactAssignment.representative_code) == code
            )
        )
        self._touch(row)
        await self.session.flush()
        remaining = [c for c in assigned if c != code]
        public = contact_public(row, remaining)
        self._contact_changed(public, "updated", [], [await self._get(Representative, code, "representative")])
        return public

    async def _place_contact(self, row: Contact) -> None:
        """Check the contact's partner (R11) or group; with neither, its e-mail domain decides (R10)."""
        if row.partner_code and row.group_code:
            raise InvalidData("a contact belongs to a partner or to a contact group, not both")
        if row.partner_code:
            await self._known_partner(row.partner_code)
            return
        if row.group_code:
            await self._known_group(row.group_code)
            return
        for email in row.emails:
            partner = await self._partner_of_domain(email.rsplit("@", 1)[-1])
            if partner is not None:
                row.partner_code = partner.code
                return
        row.group_code = EXCHANGE_GROUP

    async def _index_emails(self, row: Contact) -> None:
        assert row.id is not None
        await self.session.exec(delete(ContactEmail).where(col(ContactEmail.contact_id) == row.id))
        for email in {e.lower() for e in row.emails}:
            self.session.add(ContactEmail(contact_id=row.id, email=email))
        await self.session.flush()

    async def _assigned(self, row: Contact) -> list[str]:
        assert row.id is not None
        return (await self._assigned_many([row.id])).get(row.id, [])

    async def _assigned_many(self, ids: list[int]) -> dict[int, list[str]]:
        if not ids:
            return {}
        query = (
            select(ContactAssignment)
            .where(col(ContactAssignment.contact_id).in_(ids))
            .order_by(col(ContactAssignment.representative_code))
        )
        out: dict[int, list[str]] = {}
        for a in (await self.session.exec(query)).all():
            out.setdefault(a.contact_id, []).append(a.representative_code)
        return out

    def _contact_changed(
        self, contact: ContactPublic, change: str, reps: list[Representative], removed: list[Representative]
    ) -> None:
        """One message per assigned representative, and one per representative who lost the contact."""
        data = contact.model_dump(mode="json")
        base = {"erp_id": str(contact.id), "change": change, "version": contact.version, "origin": self.origin.value}
        for rep in reps:
            payload = {**base, "representative": rep.code, "data": data}
            outbox.record(
                self.session, type=MessageType.ERP_CHANGED, user=rep.email, kind=Kind.CONTACT, payload=payload
            )
        for rep in removed:
            # The contact left this user's scope: sync-core unlinks it, never deletes it (R20, R32).
            payload = {**base, "representative": None, "previous_representative": rep.code, "data": data}
            outbox.record(
                self.session, type=MessageType.ERP_CHANGED, user=rep.email, kind=Kind.CONTACT, payload=payload
            )

    # Activities ----------------------------------------------------------------------------

    async def get_activity(self, activity_id: int) -> ActivityPublic:
        return activity_public(await self._get(Activity, activity_id, "activity"))

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
    ) -> Page[ActivityPublic]:
        query = self._filters(Activity, select(Activity), updated_since, include_deleted)
        if representative is not None:
            query = query.where(Activity.representative == representative.upper())
        if kind is not None:
            query = query.where(Activity.kind == kind.value)
        if origin is not None:
            query = query.where(Activity.origin == origin.value)
        if chrono is not None:
            query = query.where(Activity.chrono == chrono.upper())
        # Tasks without a start are placed by their due date (sync window, R34).
        when = func.coalesce(col(Activity.start), col(Activity.due))
        if starts_after is not None:
            query = query.where(when >= starts_after)
        if starts_before is not None:
            query = query.where(when < starts_before)
        rows, total, limit, offset = await self._page(query, col(Activity.id), limit, offset)
        return Page(items=[activity_public(r) for r in rows], total=total, limit=limit, offset=offset)

    async def create_activity(self, data: ActivityCreate) -> ActivityPublic:
        origin = Origin.OUTLOOK if Origin.OUTLOOK in (self.origin, data.origin) else Origin.ERP
        row = Activity(
            **data.model_dump(exclude={"chrono", "origin"}),
            chrono=(data.chrono or "").upper(),
            origin=origin.value,
        )
        row.kind = ActivityKind(data.kind).value
        if origin == Origin.OUTLOOK:
            row.public = True  # R12: what comes from Outlook is created public
        _mirror_due(row, set(data.model_fields_set))
        owner = await self._validate_activity(row)
        if row.chrono:
            await self._chrono_is_free(row)
        else:
            row.chrono = await self._next_chrono(ActivityKind(row.kind))
        await self._refuse_overlap(row)
        values = {name: getattr(row, name) for name in _ACTIVITY_COLUMNS}
        row.id = (await self.session.exec(_INSERT_ACTIVITY, params=values)).scalar_one()  # type: ignore[call-overload]
        public = activity_public(row)
        await self._activity_changed(public, "created", [owner], previous=None)
        return public

    async def update_activity(
        self, activity_id: int, data: ActivityUpdate, *, expected_version: int | None = None
    ) -> ActivityPublic:
        row = await self._get(Activity, activity_id, "activity", lock=True)
        if row.deleted:
            raise Deleted(f"activity {row.chrono} is deleted")
        before = activity_public(row)
        self._check_version(row.version, expected_version, f"activity {row.chrono}", before)
        changes = data.model_dump(exclude_unset=True)
        if changes.get("kind") not in (None, row.kind):
            raise InvalidData(f"activity {row.chrono} is a {row.kind}; the kind of an activity cannot change")
        if changes.get("chrono") not in (None, row.chrono):
            raise InvalidData(f"activity {row.chrono}: the chrono cannot change")
        for field in ("kind", "chrono"):
            changes.pop(field, None)
        for field in ("subject", "all_day", "done", "representative", "participants", "public"):
            if field in changes and changes[field] is None:
                del changes[field]  # these cannot be empty: null means "unchanged"
        differs = {field for field, value in changes.items() if getattr(row, field) != value}
        for field, value in changes.items():
            setattr(row, field, value)
        _mirror_due(row, set(changes))
        owner = await self._validate_activity(row, differs)
        after = activity_public(row)
        if after.model_dump() == before.model_dump():
            return before
        await self._refuse_overlap(row)
        self._touch(row)
        await self.session.flush()
        public = activity_public(row)
        owners = [owner]
        previous = None
        if before.representative != row.representative:
            # R32: the mirror moves from the old owner's mailbox to the new one; both hear of it.
            previous = before.representative
            owners.append((await self._get(Representative, previous, "representative")).email)
        await self._activity_changed(public, "updated", owners, previous=previous)
        return public

    async def delete_activity(self, activity_id: int, *, expected_version: int | None = None) -> ActivityPublic:
        row = await self._get(Activity, activity_id, "activity", lock=True)
        if row.deleted:
            return activity_public(row)
        self._check_version(row.version, expected_version, f"activity {row.chrono}", activity_public(row))
        row.deleted = True
        self._touch(row)
        await self.session.flush()
        public = activity_public(row)
        owner = await self._get(Representative, row.representative, "representative")
        await self._activity_changed(public, "deleted", [owner.email], previous=None)
        return public

    async def _validate_activity(self, row: Activity, changed: set[str] | None = None) -> str:
        """The ERP's checks of an activity; returns its owner's e-mail.

        References are checked when set or changed (`changed` None: all, on create), so an
        activity whose partner or contact was deleted later can still be edited.
        """

        def check(field: str) -> bool:
            return changed is None or field in changed

        if check("representative"):
            owner = await self._active_email(row.representative)
        else:
            owner = (await self._get(Representative, row.representative, "representative")).email
        if check("participants"):
            for code in row.participants:
                await self._active_email(code)
            row.participants = _unique_lower(row.participants)
        if row.partner_code and check("partner_code"):
            await self._partner_is_known(row.partner_code)
        if row.contact_id is not None and check("contact_id"):
            contact = await self.session.get(Contact, row.contact_id)
            if contact is None or contact.deleted:
                raise UnknownReference("unknown_contact", f"contact {row.contact_id} does not exist")
        name = row.chrono or f"new {row.kind}"
        if row.kind == ActivityKind.MEETING:
            if row.start is None or row.end is None:
                raise InvalidData(f"meeting {name} needs a start and an end")
            if row.end < row.start:
                raise InvalidData(f"meeting {name} ends before it starts")
        if row.all_day and not (_is_midnight(row.start) and _is_midnight(row.end) and _is_midnight(row.due)):
            # R07: all-day items keep their dates exactly, as midnight UTC with no time-zone shift.
            raise InvalidData(f"all-day {row.kind} {name}: dates must be at 00:00:00Z")
        return owner

    async def _refuse_overlap(self, row: Activity) -> None:
        """R15: refuse a meeting that overlaps another meeting of the same representative."""
        if not self.refuse_overlaps or row.kind != ActivityKind.MEETING or row.all_day or row.deleted:
            return
        assert row.start is not None and row.end is not None
        if self.session.get_bind().dialect.name != "sqlite":
            # Lock the owner's row first: two concurrent meetings of one representative are then
            # checked one after the other. SQLite's writers are serialised already (and it has no
            # FOR UPDATE: the statement would only read the row again).
            await self.session.exec(
                select(Representative.code).where(Representative.code == row.representative).with_for_update()
            )
        params = {"representative": row.representative, "start": row.start, "end": row.end, "other_than": row.id or 0}
        other = (await self.session.exec(_OVERLAPPING_MEETING, params=params)).first()
        if other is not None:
            other_id, chrono, start, end = other
            raise Overlap(
                f"representative {row.representative} already has meeting {chrono} "
                f"from {start:%Y-%m-%dT%H:%MZ} to {end:%Y-%m-%dT%H:%MZ} (R15): "
                "move one of them or turn off overlap refusal",
                conflicting_id=other_id,
                conflicting_chrono=chrono,
            )

    async def _next_chrono(self, kind: ActivityKind) -> str:
        """The next number of a kind's counter. The counter is kept at or past every chrono of its
        numbering already taken (`_chrono_is_free`, migration 0003), so the number is free: no read
        of the activities is needed (the unique index on chrono still stands behind it)."""
        prefix = CHRONO_PREFIX[kind]
        result = await self.session.exec(_TAKE_NUMBER, params={"of_prefix": prefix})  # type: ignore[call-overload]
        number = result.scalar_one_or_none()
        if number is None:
            self.session.add(ChronoCounter(prefix=prefix, last=1))
            await self.session.flush()
            number = 1
        return chrono_of(prefix, number)

    async def _chrono_is_free(self, row: Activity) -> None:
        """A chrono given by a client (an import): refused if taken; one of the counter's own
        numbering moves the counter past it, so numbering never hands it out again."""
        prefix = CHRONO_PREFIX[ActivityKind(row.kind)]
        if not row.chrono.startswith(prefix):
            raise InvalidData(f"the chrono of a {row.kind} starts with {prefix}, not {row.chrono[:3]} (R03)")
        number = chrono_number(prefix, row.chrono)
        # The counter is locked before the check (PostgreSQL), so a number handed out meanwhile is seen.
        counter = await self.session.get(ChronoCounter, prefix, with_for_update=True) if number else None
        taken = (await self.session.exec(select(Activity.id).where(Activity.chrono == row.chrono))).first()
        if taken is not None:
            raise AlreadyExists(f"chrono {row.chrono} is already used by activity {taken}", existing_id=taken)
        if number is None:
            return
        if counter is None:
            self.session.add(ChronoCounter(prefix=prefix, last=number))
        elif counter.last < number:
            counter.last = number

    async def _activity_changed(
        self, activity: ActivityPublic, change: str, owners: list[str], *, previous: str | None
    ) -> None:
        """One message per mailbox concerned: the owner's, and the previous owner's on reassignment.

        A write made by sync-core from Outlook (origin `outlook`) that keeps the owner is announced to
        no one: it came from the owner's own mailbox, the only one that holds the activity (R13), and
        the announcement would only bring sync-core the echo of its own write (R22) — an outbox row,
        a relayed message and a consumed one per change from Outlook (docs/benchmarks.md, session 3).
        """
        if self.origin is Origin.OUTLOOK and previous is None:
            return
        payload: dict[str, Any] = {
            "erp_id": str(activity.id),
            "change": change,
            "version": activity.version,
            "origin": self.origin.value,
            "representative": activity.representative,
            "data": activity.model_dump(mode="json"),
        }
        if previous is not None:
            payload["previous_representative"] = previous
        for email in owners:
            await outbox.append(
                self.session,
                type=MessageType.ERP_CHANGED,
                user=email,
                kind=BUS_KIND[activity.kind],
                payload=payload,
            )
