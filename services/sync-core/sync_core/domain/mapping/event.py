"""Graph calendar `event` ↔ canonical meeting (R01, R07, R31, R33)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from shared.envelope import Kind

from ..errors import MappingError
from ..model import Activity, ActivityKind, Person
from ..notes import body_text, text_body
from ..timezones import floating_midnight, from_utc, local_date, to_utc, utc_midnight
from .common import instant, join_categories, split_categories, text
from .properties import (
    CHRONO,
    CONTACTS,
    ERP_ID,
    PARTICIPANTS,
    dump_codes,
    dump_persons,
    erp_ref,
    load_codes,
    load_persons,
    parse_erp_ref,
    property_entry,
    read_properties,
)


def _attendees(event: dict[str, Any]) -> tuple[Person, ...]:
    out = []
    for attendee in event.get("attendees") or ():
        address = (attendee or {}).get("emailAddress") or {}
        email = text(address.get("address"))
        name = text(address.get("name"))
        if email or name:
            out.append(Person(name=name or email or "", email=email or ""))
    return tuple(out)


def _merge_persons(first: tuple[Person, ...], then: tuple[Person, ...]) -> tuple[Person, ...]:
    """Persons in Outlook's order (R08): those we recorded, then attendees not already among them."""
    seen = {p.email.lower() for p in first if p.email}
    out = list(first)
    for p in then:
        if p.email and p.email.lower() in seen:
            continue
        seen.add(p.email.lower())
        out.append(p)
    return tuple(out)


def _dtz(event: dict[str, Any], key: str) -> dict[str, Any]:
    value = event.get(key)
    if not isinstance(value, dict) or not value.get("dateTime"):
        raise MappingError(f"event {event.get('id')!r} has no {key}.dateTime")
    return value


def persons_to_record(a: Activity) -> tuple[Person, ...]:
    """The persons to visit written on the event: the ERP's one contact first (R08), then the others."""
    if a.contact is None:
        return ()
    key = a.contact.email.lower()
    return (a.contact, *(p for p in a.persons if p != a.contact and (not key or p.email.lower() != key)))


def graph_event_to_activity(event: dict[str, Any]) -> Activity:
    """A Graph event (with our extended properties expanded) as a canonical meeting."""
    props = read_properties(event)
    _, erp_id = parse_erp_ref(props.get(ERP_ID))
    persons = _merge_persons(load_persons(props.get(CONTACTS)), _attendees(event))
    partner, others = split_categories(event.get("categories"))
    start_tz, end_tz = _dtz(event, "start"), _dtz(event, "end")
    start_date: date | None = None
    end_date: date | None = None
    if event.get("isAllDay"):
        # R07: an all-day event's days are its wall-clock dates, never shifted by a zone.
        start_date = local_date(start_tz["dateTime"])
        end_date = max(local_date(end_tz["dateTime"]) - timedelta(days=1), start_date)
        start, end = utc_midnight(start_date), utc_midnight(end_date) + timedelta(days=1)
        all_day = True
    else:
        start = to_utc(start_tz["dateTime"], start_tz.get("timeZone"))
        end = to_utc(end_tz["dateTime"], end_tz.get("timeZone"))
        all_day = False
    location = event.get("location") or {}
    return Activity(
        kind=ActivityKind.MEETING,
        subject=text(event.get("subject")),
        start=start,
        end=end,
        all_day=all_day,
        start_date=start_date,
        end_date=end_date,
        location=text(location.get("displayName")) if isinstance(location, dict) else None,
        notes=body_text(event.get("body")),
        partner_code=partner,
        contact=persons[0] if persons else None,
        persons=persons,
        participants=load_codes(props.get(PARTICIPANTS)),
        chrono=text(props.get(CHRONO)),
        private=str(event.get("sensitivity") or "").lower() == "private",
        series_type=text(event.get("type")),
        modified_at=instant(event.get("lastModifiedDateTime")),
        erp_id=erp_id,
        graph_id=text(event.get("id")),
        graph_change_key=text(event.get("changeKey")),
        categories=others,
        mails_attendees=bool(event.get("attendees")) and event.get("isOrganizer", True) is not False,
    )


def activity_to_graph_event(a: Activity, *, quiet: bool = False) -> dict[str, Any]:
    """The POST/PATCH body of a Graph event for a meeting.

    `quiet` (a `Decision.quiet` update, R31): only categories and extended properties, which Exchange
    does not send to attendees.

    Never carries `attendees` (R31): persons to visit live in the Contacts extended property.
    Never carries `sensitivity` either, so the sync cannot make an item private and then skip it (R05).
    """
    body: dict[str, Any] = {
        "subject": a.subject or "",
        "body": text_body(a.notes),
        "location": {"displayName": a.location or ""},
        "categories": join_categories(a.partner_code, a.categories),
    }
    if a.all_day:
        if a.start_date is None:
            raise MappingError(f"all-day meeting {a.erp_id or a.graph_id!r} has no start date")
        end_date = max(a.end_date or a.start_date, a.start_date)
        body["isAllDay"] = True
        body["start"] = floating_midnight(a.start_date)
        body["end"] = floating_midnight(end_date + timedelta(days=1))
    else:
        if a.start is None:
            raise MappingError(f"meeting {a.erp_id or a.graph_id!r} has no start time")
        end = a.end if a.end is not None and a.end >= a.start else a.start
        body["isAllDay"] = False
        body["start"] = from_utc(a.start)
        body["end"] = from_utc(end)
    props = [
        property_entry(CONTACTS, dump_persons(persons_to_record(a))),
        property_entry(PARTICIPANTS, dump_codes(a.participants)),
    ]
    if a.chrono:
        props.append(property_entry(CHRONO, a.chrono))
    if a.erp_id:
        props.append(property_entry(ERP_ID, erp_ref(Kind.EVENT, a.erp_id)))
    body["singleValueExtendedProperties"] = props
    if quiet:
        return {k: body[k] for k in ("categories", "singleValueExtendedProperties")}
    return body
