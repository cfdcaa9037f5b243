"""Tables of the embedded ERP and of the connector's own bookkeeping (outbox, idempotency, webhooks).

Every table hangs off `ErpBase`, whose registry (and so metadata) is separate from the other
services': each service migrates only its own tables, with its own Alembic version table.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.db import UTCDateTime
from shared.envelope import utcnow


class PartnerType(StrEnum):
    CUSTOMER = "customer"
    PROSPECT = "prospect"
    SUPPLIER = "supplier"


class ActivityKind(StrEnum):
    MEETING = "meeting"
    TASK = "task"
    CALL = "call"


class Origin(StrEnum):
    ERP = "erp"
    OUTLOOK = "outlook"


class ConflictPolicy(StrEnum):
    LAST_MODIFIED = "last_modified"
    ERP_WINS = "erp_wins"
    OUTLOOK_WINS = "outlook_wins"


CHRONO_PREFIX = {ActivityKind.MEETING: "MTG", ActivityKind.TASK: "TSK", ActivityKind.CALL: "CLL"}


def chrono_of(prefix: str, number: int) -> str:
    """The chrono a kind's counter gives for a number: MTG000042 (R03)."""
    return f"{prefix}{number:06d}"


def chrono_number(prefix: str, chrono: str) -> int | None:
    """The number of a chrono the counter could give (`chrono_of`), or None for one it never gives."""
    digits = chrono.removeprefix(prefix)
    if digits == chrono or not (digits.isascii() and digits.isdigit()):
        return None
    number = int(digits)
    return number if number > 0 and chrono_of(prefix, number) == chrono else None


EXCHANGE_GROUP = "EXCHANGE"


class ErpBase(SQLModel, registry=registry()):
    """Tables of erp-connector only."""


class Representative(ErpBase, table=True):
    """A user of the ERP (X3 "representative") with the switches of their mailbox sync (R13, R16)."""

    __tablename__ = "erp_representative"

    code: str = Field(primary_key=True, max_length=20)
    name: str
    email: str
    # Lower-cased mailbox address: the identity shared with Graph (contracts.md).
    email_lower: str = Field(unique=True, index=True)
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
    conflict_policy: str = ConflictPolicy.LAST_MODIFIED.value
    window_days_back: int = 30
    window_days_ahead: int = 365
    last_sync_outlook_to_erp: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_sync_erp_to_outlook: datetime | None = Field(default=None, sa_type=UTCDateTime)
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    deleted: bool = False


class BusinessPartner(ErpBase, table=True):
    """A customer, prospect or supplier, with the e-mail domains that identify its people (R10)."""

    __tablename__ = "erp_partner"

    code: str = Field(primary_key=True, max_length=20)
    name: str
    type: str = Field(index=True)
    domains: list[str] = Field(default_factory=list, sa_type=JSON)
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    deleted: bool = False


class PartnerDomain(ErpBase, table=True):
    """Index of `BusinessPartner.domains`, for resolution by domain (R10)."""

    __tablename__ = "erp_partner_domain"

    domain: str = Field(primary_key=True)
    partner_code: str = Field(primary_key=True, foreign_key="erp_partner.code")


class ContactGroup(ErpBase, table=True):
    """A group of contacts that belong to no partner; `EXCHANGE` is built in (R10)."""

    __tablename__ = "erp_contact_group"

    code: str = Field(primary_key=True, max_length=20)
    name: str
    builtin: bool = False
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    deleted: bool = False


class Contact(ErpBase, table=True):
    """An ERP correspondent (R04), under a partner or a contact group, assigned to representatives."""

    __tablename__ = "erp_contact"

    id: int | None = Field(default=None, primary_key=True)
    given_name: str | None = None
    surname: str | None = None
    emails: list[str] = Field(default_factory=list, sa_type=JSON)
    business_phones: list[str] = Field(default_factory=list, sa_type=JSON)
    mobile_phone: str | None = None
    job_title: str | None = None
    partner_code: str | None = Field(default=None, foreign_key="erp_partner.code", index=True)
    group_code: str | None = Field(default=None, foreign_key="erp_contact_group.code")
    origin: str = Origin.ERP.value
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    deleted: bool = False


class ContactEmail(ErpBase, table=True):
    """Index of `Contact.emails` (lower case), for `GET /contacts?email=`."""

    __tablename__ = "erp_contact_email"

    contact_id: int = Field(primary_key=True, foreign_key="erp_contact.id")
    email: str = Field(primary_key=True, index=True)


class ContactAssignment(ErpBase, table=True):
    """A representative a contact is assigned to; removing it is how Outlook deletes a contact (R20)."""

    __tablename__ = "erp_contact_representative"

    contact_id: int = Field(primary_key=True, foreign_key="erp_contact.id")
    representative_code: str = Field(primary_key=True, foreign_key="erp_representative.code", index=True)


class Activity(ErpBase, table=True):
    """A meeting, task or call (R01–R03)."""

    __tablename__ = "erp_activity"
    __table_args__ = (
        Index("ix_erp_activity_owner_kind", "representative", "kind"),
        # The overlap check (R15) reads a representative's meetings ending after a start: with this
        # index its cost stays flat as the calendar grows (R30; docs/benchmarks.md, finding 6).
        Index("ix_erp_activity_owner_kind_end", "representative", "kind", "end"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    chrono: str = Field(unique=True, max_length=30)
    subject: str = ""
    start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    due: datetime | None = Field(default=None, sa_type=UTCDateTime)
    all_day: bool = False
    location: str | None = None
    notes: str | None = None
    done: bool = False
    partner_code: str | None = Field(default=None, foreign_key="erp_partner.code")
    contact_id: int | None = Field(default=None, foreign_key="erp_contact.id")
    representative: str = Field(foreign_key="erp_representative.code")
    participants: list[str] = Field(default_factory=list, sa_type=JSON)
    public: bool = True
    origin: str = Origin.ERP.value
    time_spent_minutes: int | None = None
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    deleted: bool = False


class ChronoCounter(ErpBase, table=True):
    """Last chrono number given per prefix (MTG, TSK, CLL)."""

    __tablename__ = "erp_chrono_counter"

    prefix: str = Field(primary_key=True, max_length=3)
    last: int = 0


class OutboxMessage(ErpBase, table=True):
    """A change to publish, written in the transaction of the change itself (transactional outbox)."""

    __tablename__ = "erp_outbox"
    __table_args__ = (Index("ix_erp_outbox_unsent", "sent_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    # The envelope id, fixed at write time so every re-publish carries the same id (consumer dedupe).
    message_id: str = Field(unique=True, max_length=36)
    type: str
    kind: str | None = None
    user: str
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    # W3C trace context of the write, so the relay's publish continues the same trace.
    traceparent: str | None = None
    tracestate: str | None = None
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_type=String(500))


class IdempotencyRecord(ErpBase, table=True):
    """The first successful answer to a write with an `Idempotency-Key`, replayed on retries."""

    __tablename__ = "erp_idempotency"

    key: str = Field(primary_key=True, max_length=200)
    fingerprint: str = Field(max_length=64)
    status_code: int
    body: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class WebhookSeen(ErpBase, table=True):
    """`webhook-id`s already accepted: a replayed delivery is answered 200 and not processed again."""

    __tablename__ = "erp_webhook_seen"

    webhook_id: str = Field(primary_key=True, max_length=200)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
