"""Canonical model both sides map to: activities (meetings, tasks, calls), contacts, links, user settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from shared.envelope import Kind


class Direction(StrEnum):
    OUTLOOK_TO_ERP = "outlook_to_erp"
    ERP_TO_OUTLOOK = "erp_to_outlook"


class ActivityKind(StrEnum):
    MEETING = "meeting"
    TASK = "task"
    CALL = "call"


class ConflictPolicy(StrEnum):
    LAST_MODIFIED = "last_modified"
    ERP_WINS = "erp_wins"
    OUTLOOK_WINS = "outlook_wins"


_KIND_OF_ACTIVITY = {ActivityKind.MEETING: Kind.EVENT, ActivityKind.TASK: Kind.TASK, ActivityKind.CALL: Kind.CALL}
_ACTIVITY_OF_KIND = {v: k for k, v in _KIND_OF_ACTIVITY.items()}


def kind_of_activity(kind: ActivityKind) -> Kind:
    """The bus kind of an activity kind: ERP meetings travel as `event`."""
    return _KIND_OF_ACTIVITY[kind]


def activity_kind_of(kind: Kind) -> ActivityKind:
    """The activity kind of a bus kind; `contact` is not an activity (KeyError)."""
    return _ACTIVITY_OF_KIND[kind]


def _flag(rep: dict[str, Any], key: str, default: bool) -> bool:
    value = rep.get(key)
    return default if value is None else bool(value)


def _int(rep: dict[str, Any], key: str, default: int) -> int:
    value = rep.get(key)
    try:
        return default if value is None else int(value)
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class UserSettings:
    """A representative's sync parameters, as the ERP holds them (contracts.md, Representative)."""

    code: str | None
    email: str | None
    sales_role: bool = True
    active: bool = True
    sync_enabled: bool = True
    # R16, PX: per-direction switches.
    contacts_outlook_to_erp: bool = True
    activities_outlook_to_erp: bool = True
    activities_erp_to_outlook: bool = True
    # R16, X3: per-object switches.
    sync_meetings: bool = True
    sync_tasks: bool = True
    sync_calls: bool = True
    sync_contacts: bool = True
    # R17: contacts are one way (Outlook → ERP) unless this is on.
    contacts_two_way: bool = False
    conflict_policy: ConflictPolicy = ConflictPolicy.LAST_MODIFIED
    window_days_back: int = 30
    window_days_ahead: int = 365
    name: str | None = None

    @classmethod
    def from_erp(cls, rep: dict[str, Any]) -> UserSettings:
        """Read the ERP's representative JSON; missing switches take the documented defaults."""
        try:
            policy = ConflictPolicy(str(rep.get("conflict_policy") or ConflictPolicy.LAST_MODIFIED))
        except ValueError:
            policy = ConflictPolicy.LAST_MODIFIED
        email = rep.get("email")
        return cls(
            code=(rep.get("code") or None),
            email=email.strip().lower() if isinstance(email, str) and email.strip() else None,
            sales_role=_flag(rep, "sales_role", False),
            active=_flag(rep, "active", True),
            sync_enabled=_flag(rep, "sync_enabled", False),
            contacts_outlook_to_erp=_flag(rep, "contacts_outlook_to_erp", True),
            activities_outlook_to_erp=_flag(rep, "activities_outlook_to_erp", True),
            activities_erp_to_outlook=_flag(rep, "activities_erp_to_outlook", True),
            sync_meetings=_flag(rep, "sync_meetings", True),
            sync_tasks=_flag(rep, "sync_tasks", True),
            sync_calls=_flag(rep, "sync_calls", True),
            sync_contacts=_flag(rep, "sync_contacts", True),
            contacts_two_way=_flag(rep, "contacts_two_way", False),
            conflict_policy=policy,
            window_days_back=max(_int(rep, "window_days_back", 30), 0),
            window_days_ahead=max(_int(rep, "window_days_ahead", 365), 0),
            name=rep.get("name") or None,
        )

    @property
    def enabled(self) -> bool:
        """R13/R16: sync runs only for an active, switched-on sales representative with a mailbox."""
        return bool(self.active and self.sync_enabled and self.sales_role and self.code and self.email)

    def kind_switch(self, kind: Kind) -> bool:
        """R16 (X3): the per-object switch of a kind."""
        return {
            Kind.EVENT: self.sync_meetings,
            Kind.TASK: self.sync_tasks,
            Kind.CALL: self.sync_calls,
            Kind.CONTACT: self.sync_contacts,
        }[kind]


@dataclass(frozen=True)
class Person:
    """Somebody an activity is about: an ERP contact / person to visit, an Outlook attendee."""

    name: str
    email: str


@dataclass(frozen=True)
class Activity:
    """A meeting, task or call, whichever side it came from.

    Times are aware UTC datetimes (R33). An all-day meeting keeps its days in `start_date` and
    `end_date` (both inclusive, R07); its `start`/`end` are then the UTC midnights around those days,
    for windows and sorting only. Tasks and calls: `start` is the start (call date), `due` a date.
    Fields after `representative` are carried for the adapters; they are never compared (fingerprint).
    """

    kind: ActivityKind
    subject: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    all_day: bool = False
    start_date: date | None = None
    end_date: date | None = None
    due: date | None = None
    location: str | None = None
    notes: str | None = None
    done: bool = False
    partner_code: str | None = None
    contact: Person | None = None
    persons: tuple[Person, ...] = ()
    participants: tuple[str, ...] = ()
    time_spent_minutes: int | None = None
    chrono: str | None = None
    private: bool = False
    public: bool | None = None
    series_type: str | None = None
    modified_at: datetime | None = None
    erp_id: str | None = None
    graph_id: str | None = None
    representative: str | None = None
    # Carried, not compared:
    contact_id: int | None = None
    erp_version: int | None = None
    graph_change_key: str | None = None
    categories: tuple[str, ...] = ()
    mails_attendees: bool = False
    outlook_status: str | None = None

    @property
    def bus_kind(self) -> Kind:
        return kind_of_activity(self.kind)


@dataclass(frozen=True)
class Contact:
    """An ERP contact ("correspondent") or an Outlook contact (R04)."""

    given_name: str | None = None
    surname: str | None = None
    emails: tuple[str, ...] = ()
    business_phones: tuple[str, ...] = ()
    mobile_phone: str | None = None
    job_title: str | None = None
    company: str | None = None
    partner_code: str | None = None
    group: str | None = None
    modified_at: datetime | None = None
    erp_id: str | None = None
    graph_id: str | None = None
    # Carried, not compared:
    representatives: tuple[str, ...] = ()
    erp_version: int | None = None
    graph_change_key: str | None = None

    @property
    def bus_kind(self) -> Kind:
        return Kind.CONTACT


Item = Activity | Contact


def kind_of(item: Item) -> Kind:
    """The bus kind of a canonical item."""
    return item.bus_kind


@dataclass
class Link:
    """A Graph item and its ERP mirror, and what was last synced between them (R21, R22)."""

    kind: Kind
    user: str
    graph_id: str
    erp_id: str
    fingerprint: str
    graph_change_key: str | None = None
    erp_version: int | None = None
    graph_modified_at: datetime | None = None
    erp_modified_at: datetime | None = None
    synced_at: datetime | None = None
