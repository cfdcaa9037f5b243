"""Fingerprint of the synced fields of an item: equal on both sides when they agree (R22).

Only what crosses between the sides counts, in the form both sides can hold: times to the second
in UTC, all-day meetings by their days, notes by their words (HTML or text alike), e-mail
addresses in lower case, empty and missing alike. Identity (ids), bookkeeping (modification times,
versions) and one-sided fields (Outlook categories, persons after the first, ERP "public") don't.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Any

from .model import Activity, ActivityKind, Contact, Person
from .notes import normalise
from .rules import first_contact

VERSION = "1"


def _s(value: str | None) -> str:
    return " ".join((value or "").split())


def _t(value: datetime | None) -> str:
    return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() if value else ""


def _d(value: date | None) -> str:
    return value.isoformat() if value else ""


def _code(value: str | None) -> str:
    # The ERP stores codes and chronos in upper case.
    return _s(value).upper()


def _person(p: Person | None) -> str:
    if p is None:
        return ""
    return p.email.strip().lower() or _s(p.name).lower()


def synced_fields(item: Activity | Contact) -> dict[str, Any]:
    """The normalised synced fields an item's fingerprint is made of (also handy to show a drift, R26)."""
    if isinstance(item, Contact):
        return {
            "type": "contact",
            "given_name": _s(item.given_name),
            "surname": _s(item.surname),
            "emails": [e.strip().lower() for e in item.emails if e.strip()],
            "business_phones": [_s(p) for p in item.business_phones if _s(p)],
            "mobile_phone": _s(item.mobile_phone),
            "job_title": _s(item.job_title),
            "partner_code": _code(item.partner_code),
        }
    fields: dict[str, Any] = {
        "type": item.kind.value,
        "chrono": _code(item.chrono),
        "subject": _s(item.subject),
        "notes": normalise(item.notes),
        "partner_code": _code(item.partner_code),
        "contact": _person(first_contact(item)),
    }
    if item.kind is ActivityKind.MEETING:
        fields["location"] = _s(item.location)
        fields["participants"] = sorted({_code(p) for p in item.participants if _s(p)})
        if item.all_day:
            end = item.end_date or item.start_date
            fields["days"] = [_d(item.start_date), _d(max(end, item.start_date) if end and item.start_date else end)]
        else:
            end_time = item.end if item.end is not None and item.start is not None and item.end >= item.start else None
            fields["times"] = [_t(item.start), _t(end_time or item.start)]
    else:
        fields["start"] = _t(item.start)
        fields["due"] = _d(item.due)
        fields["done"] = bool(item.done)
        fields["time_spent_minutes"] = item.time_spent_minutes or 0
    return fields


def fingerprint(item: Activity | Contact) -> str:
    """A stable hash of the synced fields of an item."""
    data = json.dumps(synced_fields(item), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"v{VERSION}|{data}".encode()).hexdigest()
