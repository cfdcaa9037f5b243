"""The JSON shapes of the ERP REST API (contracts.md): what a write accepts and what a read returns.

`…Create` is the body of a POST; `…Update` the body of a PUT, where fields left out keep their
value; `…Public` what every read and write answers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from erp_connector.models import ActivityKind, ConflictPolicy, Origin, PartnerType

# Deliberately loose: Outlook holds addresses such as `user@localhost` that the ERP must accept.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
_CODE = re.compile(r"^[A-Za-z0-9_-]{1,20}$")
# The largest id or count the database columns hold (32-bit INTEGER on PostgreSQL): numbers beyond
# are refused as invalid input (422) instead of failing in the database (500).
MAX_DB_INT = 2**31 - 1


def _email(value: str) -> str:
    value = value.strip()
    if not _EMAIL.match(value):
        raise ValueError("not an e-mail address")
    return value


def _domain(value: str) -> str:
    value = value.strip().lower().lstrip("@")
    if not _DOMAIN.match(value):
        raise ValueError("not a domain name")
    return value


def _code(value: str) -> str:
    if not _CODE.match(value):
        raise ValueError("1 to 20 letters, digits, '-' or '_'")
    return value.upper()


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


Email = Annotated[str, AfterValidator(_email)]
Domain = Annotated[str, AfterValidator(_domain)]
Code = Annotated[str, AfterValidator(_code)]
# Times must carry an offset: a naive time would be a guess, and the ERP stores UTC (R33).
UtcTime = Annotated[AwareDatetime, AfterValidator(_utc)]


def refuse_nul(value: Any) -> Any:
    """A text (or list of texts) with a NUL character is refused: no database column can hold one
    (PostgreSQL refuses it outright), so it would otherwise fail as a 500 after validation."""
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(text, str) and "\x00" in text for text in texts):
        raise ValueError("text must not contain a NUL character (U+0000)")
    return value


class Strict(BaseModel):
    """Unknown fields are refused, so a typo is a 422 and not silently ignored; so is a NUL character."""

    model_config = ConfigDict(extra="forbid")

    _no_nul = field_validator("*", mode="after")(refuse_nul)


# Representatives ---------------------------------------------------------------------------


class RepresentativeSwitches(Strict):
    sales_role: bool = False
    active: bool = True
    sync_enabled: bool = False
    contacts_outlook_to_erp: bool = True
    activities_outlook_to_erp: bool = True
    activities_erp_to_outlook: bool = True
    sync_meetings: bool = True
    sync_tasks: bool = True
    sync_calls: bool = True
    sync_contacts: bool = True
    contacts_two_way: bool = False
    conflict_policy: ConflictPolicy = ConflictPolicy.LAST_MODIFIED
    window_days_back: int = Field(default=30, ge=0, le=3650)
    window_days_ahead: int = Field(default=365, ge=0, le=3650)
    last_sync_outlook_to_erp: UtcTime | None = None
    last_sync_erp_to_outlook: UtcTime | None = None


class RepresentativeCreate(RepresentativeSwitches):
    code: Code
    name: str = Field(min_length=1, max_length=200)
    email: Email


class RepresentativeUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: Email | None = None
    sales_role: bool | None = None
    active: bool | None = None
    sync_enabled: bool | None = None
    contacts_outlook_to_erp: bool | None = None
    activities_outlook_to_erp: bool | None = None
    activities_erp_to_outlook: bool | None = None
    sync_meetings: bool | None = None
    sync_tasks: bool | None = None
    sync_calls: bool | None = None
    sync_contacts: bool | None = None
    contacts_two_way: bool | None = None
    conflict_policy: ConflictPolicy | None = None
    window_days_back: int | None = Field(default=None, ge=0, le=3650)
    window_days_ahead: int | None = Field(default=None, ge=0, le=3650)
    last_sync_outlook_to_erp: UtcTime | None = None
    last_sync_erp_to_outlook: UtcTime | None = None


class RepresentativePublic(BaseModel):
    code: str
    name: str
    email: str
    sales_role: bool
    active: bool
    sync_enabled: bool
    contacts_outlook_to_erp: bool
    activities_outlook_to_erp: bool
    activities_erp_to_outlook: bool
    sync_meetings: bool
    sync_tasks: bool
    sync_calls: bool
    sync_contacts: bool
    contacts_two_way: bool
    conflict_policy: ConflictPolicy
    window_days_back: int
    window_days_ahead: int
    last_sync_outlook_to_erp: datetime | None
    last_sync_erp_to_outlook: datetime | None
    version: int
    updated_at: datetime
    deleted: bool


# Business partners and contact groups ------------------------------------------------------


class PartnerCreate(Strict):
    code: Code
    name: str = Field(min_length=1, max_length=200)
    type: PartnerType
    domains: list[Domain] = Field(default_factory=list, max_length=100)


class PartnerUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    type: PartnerType | None = None
    domains: list[Domain] | None = Field(default=None, max_length=100)


class PartnerPublic(BaseModel):
    code: str
    name: str
    type: PartnerType
    domains: list[str]
    version: int
    updated_at: datetime
    deleted: bool


class GroupCreate(Strict):
    code: Code
    name: str = Field(min_length=1, max_length=200)


class GroupUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)


class GroupPublic(BaseModel):
    code: str
    name: str
    builtin: bool
    version: int
    updated_at: datetime
    deleted: bool


# Contacts ----------------------------------------------------------------------------------


class ContactCreate(Strict):
    given_name: str | None = Field(default=None, max_length=200)
    surname: str | None = Field(default=None, max_length=200)
    emails: list[Email] = Field(default_factory=list, max_length=20)
    business_phones: list[str] = Field(default_factory=list, max_length=20)
    mobile_phone: str | None = Field(default=None, max_length=50)
    job_title: str | None = Field(default=None, max_length=200)
    # A partner, or a group, or neither: then the e-mail domain decides (R10).
    partner_code: Code | None = None
    group: Code | None = None
    representatives: list[Code] = Field(default_factory=list, max_length=100)
    origin: Origin = Origin.ERP


class ContactUpdate(Strict):
    given_name: str | None = Field(default=None, max_length=200)
    surname: str | None = Field(default=None, max_length=200)
    emails: list[Email] | None = Field(default=None, max_length=20)
    business_phones: list[str] | None = Field(default=None, max_length=20)
    mobile_phone: str | None = Field(default=None, max_length=50)
    job_title: str | None = Field(default=None, max_length=200)
    partner_code: Code | None = None
    group: Code | None = None
    representatives: list[Code] | None = Field(default=None, max_length=100)


class ContactPublic(BaseModel):
    id: int
    given_name: str | None
    surname: str | None
    emails: list[str]
    business_phones: list[str]
    mobile_phone: str | None
    job_title: str | None
    partner_code: str | None
    group: str | None
    representatives: list[str]
    origin: Origin
    version: int
    updated_at: datetime
    deleted: bool


# Activities --------------------------------------------------------------------------------


class ActivityCreate(Strict):
    kind: ActivityKind
    # Assigned by the ERP when absent; when given, its prefix must match the kind.
    chrono: str | None = Field(default=None, min_length=4, max_length=30)
    subject: str = Field(default="", max_length=500)
    start: UtcTime | None = None
    end: UtcTime | None = None
    due: UtcTime | None = None
    all_day: bool = False
    location: str | None = Field(default=None, max_length=500)
    notes: str | None = Field(default=None, max_length=100_000)
    done: bool = False
    partner_code: Code | None = None
    contact_id: int | None = Field(default=None, ge=1, le=MAX_DB_INT)
    representative: Code
    participants: list[Code] = Field(default_factory=list, max_length=100)
    public: bool = True
    origin: Origin = Origin.ERP
    time_spent_minutes: int | None = Field(default=None, ge=0, le=MAX_DB_INT)


class ActivityUpdate(Strict):
    # The kind of an activity never changes; it may be repeated, not altered.
    kind: ActivityKind | None = None
    chrono: str | None = Field(default=None, min_length=4, max_length=30)
    subject: str | None = Field(default=None, max_length=500)
    start: UtcTime | None = None
    end: UtcTime | None = None
    due: UtcTime | None = None
    all_day: bool | None = None
    location: str | None = Field(default=None, max_length=500)
    notes: str | None = Field(default=None, max_length=100_000)
    done: bool | None = None
    partner_code: Code | None = None
    contact_id: int | None = Field(default=None, ge=1, le=MAX_DB_INT)
    representative: Code | None = None
    participants: list[Code] | None = Field(default=None, max_length=100)
    public: bool | None = None
    time_spent_minutes: int | None = Field(default=None, ge=0, le=MAX_DB_INT)


class ActivityPublic(BaseModel):
    id: int
    kind: ActivityKind
    chrono: str
    subject: str
    start: datetime | None
    end: datetime | None
    due: datetime | None
    all_day: bool
    location: str | None
    notes: str | None
    done: bool
    partner_code: str | None
    contact_id: int | None
    representative: str
    participants: list[str]
    public: bool
    origin: Origin
    time_spent_minutes: int | None
    version: int
    created_at: datetime
    updated_at: datetime
    deleted: bool


# Listings ----------------------------------------------------------------------------------

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class PartnerResolution(BaseModel):
    """Answer of `GET /partners/resolve`: which partner a domain belongs to (R10)."""

    domain: str
    partner: PartnerPublic
