"""ERP REST JSON (contracts.md) ↔ canonical activities and contacts.

ERP times are ISO 8601 UTC. An all-day meeting runs from midnight UTC of its first day to midnight
UTC after its last (R07; `YYYY-MM-DD` days are read too, both inclusive); a task's or call's `due`
is a day, written as its midnight UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..errors import MappingError
from ..model import Activity, ActivityKind, Contact, Person
from ..rules import DEFAULT_CONTACT_GROUP, kind_of_chrono
from ..timezones import utc_midnight
from .common import instant, text, without_nul

ORIGIN_OUTLOOK = "outlook"


def format_instant(dt: datetime | None) -> str | None:
    """An aware datetime as the ERP's ISO 8601 UTC text (`…Z`); sub-second digits only when present."""
    if dt is None:
        return None
    utc = dt.astimezone(UTC)
    spec = "microseconds" if utc.microsecond else "seconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _day(value: Any, *, exclusive_end: bool = False) -> date | None:
    """A day from `YYYY-MM-DD`, or the day part of an ISO datetime as written (no zone shift, R07)."""
    if not value:
        return None
    if isinstance(value, datetime):
        dt: datetime | None = value
        day = value.date()
    elif isinstance(value, date):
        return value
    else:
        raw = str(value).strip()
        if len(raw) == 10:
            try:
                return date.fromisoformat(raw)
            except ValueError as exc:
                raise MappingError(f"not a date: {value!r}") from exc
        dt = instant(raw)
        assert dt is not None
        day = dt.date()
    # An exclusive midnight end (Graph style) names the day after the last one.
    if exclusive_end and dt is not None and dt.time() == datetime.min.time():
        day -= timedelta(days=1)
    return day


def _codes(values: Any) -> tuple[str, ...]:
    return tuple(s for s in (text(v) for v in values or ()) if s)


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _kind(a: dict[str, Any]) -> ActivityKind:
    raw = text(a.get("kind"))
    try:
        if raw:
            return ActivityKind(raw.lower())
    except ValueError:
        pass
    return kind_of_chrono(text(a.get("chrono"))) or ActivityKind.MEETING


def erp_contact_person(c: dict[str, Any]) -> Person | None:
    """The person an ERP contact record is, for `erp_activity_to_activity(..., contact=...)` (R08).

    The ERP activity names its contact by `contact_id` only, Outlook by e-mail; the fingerprint
    compares the e-mail, so the adapter reads the contact and passes this person along.
    """
    emails = _codes(c.get("emails"))
    name = " ".join(p for p in (text(c.get("given_name")), text(c.get("surname"))) if p)
    if not (emails or name):
        return None
    return Person(name=name or emails[0], email=emails[0] if emails else "")


def erp_activity_to_activity(a: dict[str, Any], *, contact: Person | None = None) -> Activity:
    """An ERP activity as canonical.

    `contact`: the person `contact_id` names (`erp_contact_person` of the ERP contact). Pass it
    whenever `contact_id` is set: without it the ERP side has no first contact and its fingerprint
    can never equal the Outlook side's (R08, R22). A `contact` object embedded in the ERP JSON
    (`{"name", "email"}`) is used when no `contact` is given.
    """
    kind = _kind(a)
    if contact is None and isinstance(a.get("contact"), dict):
        embedded = a["contact"]
        if embedded.get("email") or embedded.get("name"):
            contact = Person(name=str(embedded.get("name") or ""), email=str(embedded.get("email") or ""))
    all_day = bool(a.get("all_day")) and kind is ActivityKind.MEETING
    start_date: date | None = None
    end_date: date | None = None
    due: date | None = None
    start: datetime | None
    end: datetime | None
    if all_day:
        start_date = _day(a.get("start"))
        end_date = _day(a.get("end"), exclusive_end=len(str(a.get("end") or "")) > 10) or start_date
        if start_date is None:
            raise MappingError(f"all-day ERP activity {a.get('id')!r} has no start date")
        end_date = max(end_date or start_date, start_date)
        start, end = utc_midnight(start_date), utc_midnight(end_date) + timedelta(days=1)
    elif kind is ActivityKind.MEETING:
        start, end = instant(a.get("start")), instant(a.get("end"))
    else:
        start, end = instant(a.get("start")), None
        # contracts.md: a task's due date is `due` (older payloads put it in `end`).
        due = _day(a.get("due")) if a.get("due") else _day(a.get("end"))
    erp_id = a.get("id")
    return Activity(
        kind=kind,
        subject=text(a.get("subject")),
        start=start,
        end=end,
        all_day=all_day,
        start_date=start_date,
        end_date=end_date,
        due=due,
        location=text(a.get("location")),
        notes=text(a.get("notes")),
        done=bool(a.get("done")),
        partner_code=text(a.get("partner_code")),
        contact=contact,
        persons=(contact,) if contact else (),
        participants=_codes(a.get("participants")),
        time_spent_minutes=_int_or_none(a.get("time_spent_minutes")),
        chrono=text(a.get("chrono")),
        public=None if a.get("public") is None else bool(a.get("public")),
        modified_at=instant(a.get("updated_at")),
        erp_id=None if erp_id is None else str(erp_id),
        representative=text(a.get("representative")),
        contact_id=_int_or_none(a.get("contact_id")),
        erp_version=_int_or_none(a.get("version")),
    )


def _create(erp_id: str | None, create: bool | None) -> bool:
    return erp_id is None if create is None else create


def activity_to_erp(
    a: Activity,
    *,
    representative: str,
    contact_id: int | None,
    partner_code: str | None,
    create: bool | None = None,
) -> dict[str, Any]:
    """The ERP API body for an activity coming from Outlook: POST when `create`, else PUT.

    `create` defaults to "the item has no ERP id yet". A creation is public (R12) and says
    `origin: outlook`; an update sends `public` only when the item carries the ERP's own setting
    (see `merge.for_erp`) and never `origin` (the ERP refuses it on update — send the
    `X-Change-Origin: outlook` header). The chrono is sent only when known: the ERP assigns it.
    Times are UTC instants; an all-day meeting runs from midnight UTC of its first day to midnight
    UTC after its last (R07); a task's due day is midnight UTC of that day.
    """
    creating = _create(a.erp_id, create)
    body: dict[str, Any] = {
        "kind": a.kind.value,
        "subject": a.subject or "",
        "location": a.location,
        "notes": a.notes,
        "done": a.done,
        "partner_code": partner_code,
        "contact_id": contact_id,
        "representative": representative,
        "participants": list(a.participants),
        "time_spent_minutes": a.time_spent_minutes,
    }
    if creating:
        body["public"] = True if a.public is None else a.public
        body["origin"] = ORIGIN_OUTLOOK
    elif a.public is not None:
        body["public"] = a.public
    if a.kind is ActivityKind.MEETING:
        body["all_day"] = a.all_day
        if a.all_day and a.start_date is not None:
            last = max(a.end_date or a.start_date, a.start_date)
            body["start"] = format_instant(utc_midnight(a.start_date))
            body["end"] = format_instant(utc_midnight(last) + timedelta(days=1))
        else:
            body["start"] = format_instant(a.start)
            end = a.end if a.end is not None and a.start is not None and a.end >= a.start else a.start
            body["end"] = format_instant(end)
        body["due"] = None
    else:
        # One deadline: the ERP mirrors `due` into `end` for tasks and calls.
        body["all_day"] = False
        body["start"] = format_instant(a.start)
        body["due"] = format_instant(utc_midnight(a.due)) if a.due else None
    if a.chrono:
        body["chrono"] = a.chrono
    return without_nul(body)


def erp_contact_to_contact(c: dict[str, Any]) -> Contact:
    """An ERP contact as canonical."""
    erp_id = c.get("id")
    return Contact(
        given_name=text(c.get("given_name")),
        surname=text(c.get("surname")),
        emails=_codes(c.get("emails")),
        business_phones=_codes(c.get("business_phones")),
        mobile_phone=text(c.get("mobile_phone")),
        job_title=text(c.get("job_title")),
        partner_code=text(c.get("partner_code")),
        group=text(c.get("group")),
        modified_at=instant(c.get("updated_at")),
        erp_id=None if erp_id is None else str(erp_id),
        representatives=_codes(c.get("representatives")),
        erp_version=_int_or_none(c.get("version")),
    )


def contact_to_erp(
    c: Contact, *, representative: str, partner_code: str | None, group: str | None, create: bool | None = None
) -> dict[str, Any]:
    """The ERP API body for a contact coming from Outlook: POST when `create` (default: no ERP id), else PUT.

    R10: with no partner the contact goes into `group` (default "EXCHANGE"). The user is added to the
    contact's representatives; those already assigned (carried on `c`, see `merge.for_erp`) stay.
    """
    reps = list(dict.fromkeys((*c.representatives, representative)))
    body = {
        "given_name": c.given_name or "",
        "surname": c.surname or "",
        "emails": list(c.emails),
        "business_phones": list(c.business_phones),
        "mobile_phone": c.mobile_phone,
        "job_title": c.job_title,
        "partner_code": partner_code,
        "group": None if partner_code else (group or DEFAULT_CONTACT_GROUP),
        "representatives": reps,
    }
    if _create(c.erp_id, create):
        body["origin"] = ORIGIN_OUTLOOK
    return without_nul(body)
