"""Builders for the pure-core tests: canonical items, settings and Graph-shaped echoes."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from typing import Any

from shared.envelope import Kind
from sync_core.domain.model import Activity, ActivityKind, Contact, Link, Person, UserSettings
from sync_core.domain.timezones import from_utc, to_utc

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
ME = "R1"
MY_EMAIL = "ann.rep@example.com"


def settings(**kw: Any) -> UserSettings:
    base: dict[str, Any] = {"code": ME, "email": MY_EMAIL}
    base.update(kw)
    return UserSettings(**base)


def meeting(**kw: Any) -> Activity:
    base: dict[str, Any] = {
        "kind": ActivityKind.MEETING,
        "subject": "Visit Acme",
        "start": datetime(2024, 6, 3, 8, 0, tzinfo=UTC),
        "end": datetime(2024, 6, 3, 9, 30, tzinfo=UTC),
        "location": "Lyon",
        "notes": "Bring the samples",
        "partner_code": "ACME",
        "contact": Person("Bob Buyer", "bob@acme.com"),
        "persons": (Person("Bob Buyer", "bob@acme.com"),),
        "participants": (ME,),
        "chrono": "MTG0001",
        "representative": ME,
        "modified_at": datetime(2024, 6, 1, 10, 0, tzinfo=UTC),
    }
    base.update(kw)
    return Activity(**base)


def all_day(start: date, end: date, **kw: Any) -> Activity:
    return meeting(all_day=True, start_date=start, end_date=end, start=None, end=None, **kw)


def task(**kw: Any) -> Activity:
    base: dict[str, Any] = {
        "kind": ActivityKind.TASK,
        "subject": "Send the offer",
        "start": datetime(2024, 6, 2, 7, 0, tzinfo=UTC),
        "due": date(2024, 6, 10),
        "notes": "v2 prices",
        "partner_code": "ACME",
        "contact": Person("Bob Buyer", "bob@acme.com"),
        "persons": (Person("Bob Buyer", "bob@acme.com"),),
        "chrono": "TSK0001",
        "representative": ME,
        "time_spent_minutes": 30,
        "modified_at": datetime(2024, 6, 1, 10, 0, tzinfo=UTC),
    }
    base.update(kw)
    return Activity(**base)


def call(**kw: Any) -> Activity:
    base: dict[str, Any] = {"kind": ActivityKind.CALL, "subject": "Call about delivery", "chrono": "CLL0001"}
    base.update(kw)
    return task(**base)


def contact(**kw: Any) -> Contact:
    base: dict[str, Any] = {
        "given_name": "Bob",
        "surname": "Buyer",
        "emails": ("bob@acme.com",),
        "business_phones": ("+33 1 23 45 67 89",),
        "mobile_phone": "+33 6 00 00 00 00",
        "job_title": "Buyer",
        "partner_code": "ACME",
        "representatives": (ME,),
        "modified_at": datetime(2024, 6, 1, 10, 0, tzinfo=UTC),
    }
    base.update(kw)
    return Contact(**base)


def link(kind: Kind, fingerprint: str, **kw: Any) -> Link:
    base: dict[str, Any] = {
        "kind": kind,
        "user": MY_EMAIL,
        "graph_id": "AAMkG=",
        "erp_id": "42",
        "fingerprint": fingerprint,
        "synced_at": datetime(2024, 6, 1, 9, 0, tzinfo=UTC),
    }
    base.update(kw)
    return Link(**base)


def outlook_html(text: str) -> str:
    """How Outlook hands back a text body it stored: an HTML document."""
    from html import escape

    lines = "".join(f"<div>{escape(line) or '<br>'}</div>" for line in text.split("\n"))
    return (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        "<style>p { margin: 0 }</style></head><body>" + lines + "</body></html>"
    )


def graph_echo(body: dict[str, Any], *, time_zone: str = "UTC", item_id: str = "AAMkG=") -> dict[str, Any]:
    """What Graph returns after a POST of `body`: ids, an HTML body, times shown in `time_zone`.

    Extended property ids come back in another case; all-day boundaries stay floating.
    """
    out = copy.deepcopy(body)
    out["id"] = item_id
    out["changeKey"] = "ck1"
    out["lastModifiedDateTime"] = "2024-06-01T10:00:00.1234567Z"
    if isinstance(out.get("body"), dict) and out["body"].get("content") and out["body"].get("contentType") == "text":
        out["body"] = {"contentType": "html", "content": outlook_html(out["body"]["content"])}
    for key in ("start", "end", "startDateTime"):
        value = out.get(key)
        if isinstance(value, dict) and not out.get("isAllDay"):
            out[key] = from_utc(to_utc(value["dateTime"], value["timeZone"]), time_zone)
    if "attendees" not in out and "isAllDay" in out:
        out["attendees"] = []
        out["type"] = "singleInstance"
        out["sensitivity"] = "normal"
        out["isOrganizer"] = True
    for prop in out.get("singleValueExtendedProperties") or ():
        prop["id"] = prop["id"].upper()  # ids are compared case-insensitively
    for ext in out.get("extensions") or ():
        ext["id"] = "Microsoft.OutlookServices.OpenTypeExtension." + ext["extensionName"]
    return out
