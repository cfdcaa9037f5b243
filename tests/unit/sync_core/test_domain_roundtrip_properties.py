"""Property tests: ERP → Graph → ERP is identity on synced fields; Graph → canonical → Graph is stable.

The Graph side is simulated the way Graph answers: ids and changeKey added, the text body handed
back as Outlook HTML, extended-property ids in another case, timed values in a chosen zone.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

from domain_builders import graph_echo
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sync_core.domain.decide import changed_fields
from sync_core.domain.fingerprint import fingerprint, synced_fields
from sync_core.domain.mapping.contact import contact_to_graph_contact, graph_contact_to_contact
from sync_core.domain.mapping.erp import (
    activity_to_erp,
    contact_to_erp,
    erp_activity_to_activity,
    erp_contact_to_contact,
)
from sync_core.domain.mapping.event import activity_to_graph_event, graph_event_to_activity
from sync_core.domain.mapping.todo import activity_to_graph_todo, graph_todo_to_activity
from sync_core.domain.model import Person
from sync_core.domain.timezones import parse_date_time, zone

ZONES = [
    "UTC",
    "W. Europe Standard Time",
    "Pacific Standard Time",
    "AUS Eastern Standard Time",
    "India Standard Time",
    "Europe/Lisbon",
    "America/Sao_Paulo",
]

_WORD = st.text(
    alphabet=st.characters(whitelist_categories=("L", "N", "P", "S"), blacklist_characters="#"), min_size=1, max_size=12
)
clean_text = st.lists(_WORD, min_size=1, max_size=6).map(" ".join)
optional_text = st.none() | clean_text
notes_text = st.none() | st.lists(st.one_of(clean_text, st.just("")), min_size=1, max_size=5).map(
    lambda lines: "\n".join(lines).strip() or None
)
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=80)
code = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=10)
email = st.builds(
    lambda u, d: f"{u}@{d}.example",
    st.from_regex(r"[a-z][a-z0-9.]{0,10}", fullmatch=True),
    st.from_regex(r"[a-z]{1,10}", fullmatch=True),
)
person = st.builds(Person, clean_text, email)
instant = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2050, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0)
)
day = st.dates(min_value=date(2000, 1, 1), max_value=date(2050, 1, 1))


def _z(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def erp_meeting(draw: st.DrawFn) -> tuple[dict[str, Any], Person | None]:
    contact = draw(st.none() | person)
    rep: dict[str, Any] = {
        "id": draw(st.integers(1, 10**9)),
        "kind": "meeting",
        "chrono": draw(st.none() | code.map(lambda c: "MTG" + c)),
        "subject": draw(optional_text),
        "location": draw(optional_text),
        "notes": draw(notes_text),
        "partner_code": draw(st.none() | code),
        "contact_id": draw(st.integers(1, 10**6)) if contact else None,
        "representative": "R1",
        "participants": draw(st.lists(code, max_size=4, unique=True)),
        "public": draw(st.booleans()),
        "done": False,
        "due": None,
        "time_spent_minutes": None,
        "version": 1,
        "updated_at": "2024-06-01T10:00:00Z",
    }
    if draw(st.booleans()):  # R07: all-day, maybe several days
        first = draw(day)
        rep.update(
            all_day=True,
            start=f"{first.isoformat()}T00:00:00Z",
            end=f"{(first + timedelta(days=draw(st.integers(1, 21)))).isoformat()}T00:00:00Z",
        )
    else:  # timed, maybe over several days
        start = draw(instant)
        rep.update(all_day=False, start=_z(start), end=_z(start + timedelta(minutes=draw(st.integers(0, 60 * 24 * 9)))))
    return rep, contact


@st.composite
def erp_task(draw: st.DrawFn) -> tuple[dict[str, Any], Person | None]:
    kind = draw(st.sampled_from(["task", "call"]))
    contact = draw(st.none() | person)
    start = draw(st.none() | instant)
    rep = {
        "id": draw(st.integers(1, 10**9)),
        "kind": kind,
        "chrono": draw(st.none() | code.map(lambda c: ("CLL" if kind == "call" else "TSK") + c)),
        "subject": draw(optional_text),
        "start": _z(start) if start else None,
        "end": None,
        "due": draw(st.none() | day.map(lambda d: f"{d.isoformat()}T00:00:00Z")),
        "all_day": False,
        "location": None,
        "notes": draw(notes_text),
        "done": draw(st.booleans()),
        "partner_code": draw(st.none() | code),
        "contact_id": draw(st.integers(1, 10**6)) if contact else None,
        "representative": "R1",
        "participants": [],
        "public": True,
        "time_spent_minutes": draw(st.none() | st.integers(1, 10**5)),
        "version": 1,
        "updated_at": "2024-06-01T10:00:00Z",
    }
    return rep, contact


MEETING_KEYS = (
    "kind",
    "chrono",
    "subject",
    "all_day",
    "start",
    "end",
    "location",
    "notes",
    "partner_code",
    "contact_id",
    "participants",
)
TASK_KEYS = (
    "kind",
    "chrono",
    "subject",
    "start",
    "due",
    "notes",
    "done",
    "partner_code",
    "contact_id",
    "time_spent_minutes",
)


def _same(keys: tuple[str, ...], a: dict[str, Any], b: dict[str, Any]) -> None:
    """Equal on `keys`, an empty value and a missing one alike (the ERP fills chrono itself)."""

    def norm(d: dict[str, Any]) -> dict[str, Any]:
        return {k: (d.get(k) if d.get(k) not in ("", [], None) else None) for k in keys}

    assert norm(a) == norm(b)


def _unambiguous(body: dict[str, Any], tz: str) -> bool:
    """False when a timed value falls in the zone's repeated DST hour (wall time can't tell it apart)."""
    for key in ("start", "end", "startDateTime"):
        value = body.get(key)
        if isinstance(value, dict) and not body.get("isAllDay"):
            local = parse_date_time(value["dateTime"]).replace(tzinfo=zone(tz))
            if local.replace(fold=1).utcoffset() != local.utcoffset():
                return False
    return True


def _erp_back(back: Any, contact: Person | None, contact_id: int | None) -> dict[str, Any]:
    # The adapter resolves the first contact's e-mail to the ERP contact id, and #CODE# to the partner.
    cid = contact_id if back.contact and contact and back.contact.email == contact.email else None
    return activity_to_erp(back, representative="R1", contact_id=cid, partner_code=back.partner_code)


@settings(max_examples=150, deadline=None)
@given(sample=erp_meeting(), tz=st.sampled_from(ZONES))
def test_erp_meeting_through_graph_and_back_is_identity_R01_R07_R33(
    sample: tuple[dict[str, Any], Person | None], tz: str
) -> None:
    rep, contact = sample
    a = erp_activity_to_activity(rep, contact=contact)
    body = activity_to_graph_event(a)
    assert "attendees" not in body  # R31
    echo = graph_echo(body, time_zone=tz)
    assume(_unambiguous(echo, tz))
    back = graph_event_to_activity(echo)
    assert fingerprint(back) == fingerprint(a)
    assert back.erp_id == str(rep["id"])  # R21
    again = _erp_back(back, contact, rep["contact_id"])
    _same(MEETING_KEYS, again, rep)


@settings(max_examples=150, deadline=None)
@given(sample=erp_task(), tz=st.sampled_from(ZONES))
def test_erp_task_or_call_through_todo_and_back_is_identity_R02_R03(
    sample: tuple[dict[str, Any], Person | None], tz: str
) -> None:
    rep, contact = sample
    a = erp_activity_to_activity(rep, contact=contact)
    echo = graph_echo(activity_to_graph_todo(a), time_zone=tz)
    assume(_unambiguous(echo, tz))
    back = graph_todo_to_activity(echo)
    assert back.kind is a.kind  # R03
    assert fingerprint(back) == fingerprint(a)
    again = _erp_back(back, contact, rep["contact_id"])
    _same(TASK_KEYS, again, rep)


@st.composite
def erp_contact(draw: st.DrawFn) -> dict[str, Any]:
    partner = draw(st.none() | code)
    return {
        "id": draw(st.integers(1, 10**9)),
        "given_name": draw(clean_text),
        "surname": draw(clean_text),
        "emails": draw(st.lists(email, min_size=1, max_size=3, unique=True)),
        "business_phones": draw(st.lists(st.from_regex(r"\+[0-9]{6,12}", fullmatch=True), max_size=2)),
        "mobile_phone": draw(st.none() | st.from_regex(r"\+[0-9]{6,12}", fullmatch=True)),
        "job_title": draw(optional_text),
        "partner_code": partner,
        "group": None if partner else "EXCHANGE",
        "representatives": ["R1"],
        "version": 1,
        "updated_at": "2024-06-01T10:00:00Z",
    }


CONTACT_KEYS = (
    "given_name",
    "surname",
    "emails",
    "business_phones",
    "mobile_phone",
    "job_title",
    "partner_code",
    "group",
    "representatives",
)


@settings(max_examples=150, deadline=None)
@given(rep=erp_contact())
def test_erp_contact_through_graph_and_back_is_identity_R04_R11(rep: dict[str, Any]) -> None:
    c = erp_contact_to_contact(rep)
    back = graph_contact_to_contact(graph_echo(contact_to_graph_contact(c)))
    assert fingerprint(back) == fingerprint(c)
    assert back.erp_id == str(rep["id"])
    again = contact_to_erp(back, representative="R1", partner_code=back.partner_code, group=None)
    _same(CONTACT_KEYS, again, rep)


@st.composite
def outlook_event(draw: st.DrawFn) -> dict[str, Any]:
    """An event as users make them in Outlook: any zone, HTML body, attendees, own categories."""
    tz = draw(st.sampled_from(ZONES))
    start = draw(instant)
    end = start + timedelta(minutes=draw(st.integers(0, 60 * 24 * 3)))
    if draw(st.booleans()):
        first = draw(day)
        times = {
            "isAllDay": True,
            "start": {"dateTime": f"{first.isoformat()}T00:00:00.0000000", "timeZone": tz},
            "end": {
                "dateTime": f"{(first + timedelta(days=draw(st.integers(1, 9)))).isoformat()}T00:00:00.0000000",
                "timeZone": tz,
            },
        }
    else:
        from sync_core.domain.timezones import from_utc

        times = {"isAllDay": False, "start": from_utc(start, tz), "end": from_utc(end, tz)}
    attendees = [
        {"type": "required", "emailAddress": {"name": p.name, "address": p.email}}
        for p in draw(st.lists(person, max_size=3, unique_by=lambda p: p.email))
    ]
    categories = draw(st.lists(st.sampled_from(["Red category", "Blue", "Customer"]), unique=True, max_size=2))
    partner = draw(st.none() | code)
    return {
        "id": "AAMkAG=",
        "changeKey": "ck",
        "lastModifiedDateTime": "2024-06-01T10:00:00Z",
        "subject": draw(any_text),
        "body": {
            "contentType": "html",
            "content": f"<html><body><p>{draw(any_text).replace('<', '&lt;')}</p></body></html>",
        },
        "location": {"displayName": draw(any_text)},
        "categories": categories + ([f"#{partner}#"] if partner else []),
        "sensitivity": "normal",
        "type": "singleInstance",
        "isOrganizer": True,
        "attendees": attendees,
        **times,
    }


def _patched(original: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Graph after a PATCH: the body's properties replace the original ones, the rest stays (attendees)."""
    out = copy.deepcopy(original)
    out.update(copy.deepcopy(body))
    return graph_echo(out, time_zone="UTC", item_id=original["id"])


@settings(max_examples=150, deadline=None)
@given(event=outlook_event())
def test_graph_event_through_canonical_and_back_is_stable_R01_R08_R11(event: dict[str, Any]) -> None:
    first = graph_event_to_activity(event)
    body1 = activity_to_graph_event(first)
    second = graph_event_to_activity(_patched(event, body1))
    body2 = activity_to_graph_event(second)
    assert body2 == body1
    assert fingerprint(second) == fingerprint(first)
    assert second.contact == first.contact  # R08
    assert second.partner_code == first.partner_code and second.categories == first.categories  # R11


@settings(max_examples=100, deadline=None)
@given(event=outlook_event(), chrono=st.none() | code.map(lambda c: "MTG" + c), erp_id=st.integers(1, 10**6))
def test_outlook_meeting_through_erp_and_back_differs_only_by_what_the_erp_adds_R12_R22(
    event: dict[str, Any], chrono: str | None, erp_id: int
) -> None:
    a = graph_event_to_activity(event)
    contact_id = 77 if a.contact else None
    stored = activity_to_erp(a, representative="R1", contact_id=contact_id, partner_code=a.partner_code)
    assert stored["public"] is True and stored["origin"] == "outlook"  # R12
    stored = {**stored, "id": erp_id, "version": 1, "updated_at": "2024-06-01T10:00:01Z"}
    if chrono:
        stored["chrono"] = chrono
    back = erp_activity_to_activity(stored, contact=a.contact)
    assert changed_fields(a, back) == (("chrono",) if chrono else ())
    if not chrono:
        assert fingerprint(back) == fingerprint(a)
    assert synced_fields(back)["contact"] == synced_fields(a)["contact"]


@settings(max_examples=100, deadline=None)
@given(
    title=any_text,
    status=st.sampled_from(["notStarted", "inProgress", "completed", "waitingOnOthers", "deferred"]),
    due=st.none() | day,
    categories=st.lists(st.sampled_from(["Red", "#ACME#", "Blue"]), unique=True),
)
def test_graph_todo_through_canonical_and_back_is_stable_R02_R03(
    title: str, status: str, due: date | None, categories: list[str]
) -> None:
    task = {
        "id": "T1",
        "title": title,
        "status": status,
        "body": {"contentType": "text", "content": title},
        "categories": categories,
        "lastModifiedDateTime": "2024-06-01T10:00:00Z",
        "dueDateTime": {"dateTime": f"{due.isoformat()}T00:00:00.0000000", "timeZone": "UTC"} if due else None,
    }
    first = graph_todo_to_activity(task)
    body1 = activity_to_graph_todo(first)
    second = graph_todo_to_activity(graph_echo({**task, **body1}, item_id="T1"))
    body2 = activity_to_graph_todo(second)
    assert fingerprint(second) == fingerprint(first)
    assert second.outlook_status == status
    # Outlook may hand the text back as HTML (a no-break space becomes a space): from then on it's a fixpoint.
    assert {k: v for k, v in body2.items() if k != "body"} == {k: v for k, v in body1.items() if k != "body"}
    third = graph_todo_to_activity(graph_echo({**task, **body2}, item_id="T1"))
    assert activity_to_graph_todo(third) == body2
