"""The rules of SPEC.md that decide whether an item is in a user's sync scope, and their small helpers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.envelope import Kind

from .model import Activity, ActivityKind, Contact, Person, UserSettings
from .timezones import utc_midnight

# R10: a contact's e-mail domain is matched against customers, then prospects, then suppliers.
partner_resolution_order = ("customer", "prospect", "supplier")
# R10: no partner matched — the contact goes into this ERP contact group.
DEFAULT_CONTACT_GROUP = "EXCHANGE"

RECURRING_TYPES = frozenset({"seriesMaster", "occurrence", "exception"})

# The ERP's code syntax (erp-connector schemas): 1–20 letters, digits, '-' or '_'; codes are upper case.
_CODE = re.compile(r"#([A-Za-z0-9_-]{1,20})#")


@dataclass(frozen=True)
class Skip:
    """Why an item is not synced: the rule id, a sentence for the journal, and whether to drop its link (R32)."""

    rule: str
    reason: str
    unlink: bool = False


def company_code(text: str | None) -> str | None:
    """R11: the business-partner code written `#CODE#` in an Outlook company field or category."""
    if not text:
        return None
    match = _CODE.search(text)
    return match.group(1).upper() if match else None


def company_text(code: str) -> str:
    """R11: how a partner code is written into Outlook."""
    return f"#{code}#"


def email_domain(email: str) -> str:
    """R10: the lower-case domain of an e-mail address ('' when there is none)."""
    _, at, domain = email.strip().rpartition("@")
    return domain.strip().strip(">").lower() if at else ""


def first_contact(a: Activity) -> Person | None:
    """R08: the ERP holds one contact per activity — the first one in Outlook's order."""
    if a.contact is not None:
        return a.contact
    return a.persons[0] if a.persons else None


def contact_for_person(p: Person) -> Contact:
    """R14: the ERP contact to create for a task's person unknown to the ERP.

    R09 wants a given name, a surname and an e-mail: a one-word name is used for both, no name at all
    takes the e-mail's local part.
    """
    words = p.name.split() or [p.email.partition("@")[0] or p.email]
    given, surname = (words[0], " ".join(words[1:])) if len(words) > 1 else (words[0], words[0])
    return Contact(given_name=given, surname=surname, emails=(p.email,) if p.email else ())


def kind_of_chrono(chrono: str | None) -> ActivityKind | None:
    """R03: a `CLL…` chrono is a call, a `TSK…` chrono a task; anything else says nothing."""
    if not chrono:
        return None
    head = chrono.strip().upper()
    if head.startswith("CLL"):
        return ActivityKind.CALL
    if head.startswith("TSK"):
        return ActivityKind.TASK
    return None


def activity_span(a: Activity) -> tuple[datetime, datetime] | None:
    """The time an activity occupies, for the window (R34); None when it has no date at all."""
    if a.kind is ActivityKind.MEETING:
        if a.all_day and a.start_date is not None:
            end_day = a.end_date or a.start_date
            return utc_midnight(a.start_date), utc_midnight(end_day) + timedelta(days=1)
        if a.start is None:
            return None
        return a.start, a.end or a.start
    points = [p for p in (a.start, utc_midnight(a.due) if a.due else None) if p is not None]
    if not points:
        return None
    return min(points), max(points)


def in_window(a: Activity, settings: UserSettings, now: datetime) -> bool:
    """R34: the activity touches [now - days back, now + days ahead]; undated tasks always do."""
    span = activity_span(a)
    if span is None:
        return True
    low = now - timedelta(days=settings.window_days_back)
    high = now + timedelta(days=settings.window_days_ahead)
    return span[1] >= low and span[0] <= high


def missing_contact_fields(c: Contact) -> list[str]:
    """R09: which of given name, surname, e-mail a contact lacks."""
    missing = []
    if not (c.given_name or "").strip():
        missing.append("given name")
    if not (c.surname or "").strip():
        missing.append("surname")
    if not any(e.strip() for e in c.emails):
        missing.append("e-mail address")
    return missing


def _user_off(settings: UserSettings) -> Skip | None:
    if settings.enabled:
        return None
    if not settings.code or not settings.sales_role:
        return Skip("R13", "user has no representative code or sales role and cannot be synced", unlink=True)
    if not settings.email:
        return Skip("R16", "user has no mailbox address", unlink=True)
    return Skip("R16", "user is inactive or switched off", unlink=True)


def _kind_off(kind: Kind, settings: UserSettings) -> Skip | None:
    if not settings.kind_switch(kind):
        label = {Kind.EVENT: "meetings", Kind.TASK: "tasks", Kind.CALL: "calls", Kind.CONTACT: "contacts"}[kind]
        return Skip("R16", f"{label} are switched off for this user", unlink=True)
    return None


def _outside_window(a: Activity, settings: UserSettings, now: datetime) -> Skip | None:
    if in_window(a, settings, now):
        return None
    return Skip(
        "R34",
        f"outside the sync window ({settings.window_days_back} days back, {settings.window_days_ahead} ahead)",
        unlink=True,
    )


def outlook_scope(kind: Kind, item: Activity | Contact, settings: UserSettings, now: datetime) -> Skip | None:
    """Whether an Outlook item may go to the ERP; None when it may."""
    skip = _user_off(settings)
    if skip:
        return skip
    if isinstance(item, Contact):
        if not settings.contacts_outlook_to_erp:
            # One direction off: the link stays while the other direction still uses it (R17, R20).
            return Skip(
                "R16", "contacts Outlook → ERP are switched off for this user", unlink=not settings.contacts_two_way
            )
        skip = _kind_off(Kind.CONTACT, settings)
        if skip:
            return skip
        missing = missing_contact_fields(item)
        if missing:
            return Skip("R09", f"contact has no {', no '.join(missing)}")
        return None
    if not settings.activities_outlook_to_erp:
        return Skip(
            "R16",
            "activities Outlook → ERP are switched off for this user",
            unlink=not settings.activities_erp_to_outlook,
        )
    skip = _kind_off(kind, settings)
    if skip:
        return skip
    if item.private:
        return Skip("R05", "marked private in Outlook; private items are never sent to the ERP", unlink=True)
    if item.series_type in RECURRING_TYPES:
        return Skip("R06", f"recurring event ({item.series_type}); recurring activities are not synced", unlink=True)
    return _outside_window(item, settings, now)


def erp_scope(kind: Kind, item: Activity | Contact, settings: UserSettings, now: datetime) -> Skip | None:
    """Whether an ERP item may go to this user's mailbox; None when it may."""
    skip = _user_off(settings)
    if skip:
        return skip
    if isinstance(item, Contact):
        if not settings.contacts_two_way:
            if settings.code not in item.representatives:
                return Skip("R13", f"contact is not assigned to representative {settings.code}", unlink=True)
            # One-way contacts keep their link: Outlook edits and deletions still reach the ERP (R17, R20).
            return Skip(
                "R17",
                "contacts are synced Outlook → ERP only for this user",
                unlink=not settings.contacts_outlook_to_erp,
            )
        skip = _kind_off(Kind.CONTACT, settings)
        if skip:
            return skip
        if settings.code not in item.representatives:
            return Skip("R13", f"contact is not assigned to representative {settings.code}", unlink=True)
        missing = missing_contact_fields(item)
        if missing:
            return Skip("R09", f"contact has no {', no '.join(missing)}")
        return None
    if item.representative != settings.code:
        return Skip("R13", f"activity belongs to representative {item.representative or '(none)'}", unlink=True)
    if not settings.activities_erp_to_outlook:
        return Skip(
            "R16",
            "activities ERP → Outlook are switched off for this user",
            unlink=not settings.activities_outlook_to_erp,
        )
    skip = _kind_off(kind, settings)
    if skip:
        return skip
    return _outside_window(item, settings, now)
