"""Whole round trips through mapping and decisions, no I/O: what the adapters will see (R21, R22, R31)."""

from __future__ import annotations

from typing import Any

from domain_builders import NOW, graph_echo, link, settings

from shared.envelope import Kind
from sync_core.domain.decide import Action, decide_erp_change, decide_outlook_change
from sync_core.domain.fingerprint import fingerprint
from sync_core.domain.mapping.contact import contact_to_graph_contact, graph_contact_to_contact
from sync_core.domain.mapping.erp import activity_to_erp, erp_activity_to_activity, erp_contact_to_contact
from sync_core.domain.mapping.event import activity_to_graph_event, graph_event_to_activity
from sync_core.domain.mapping.todo import activity_to_graph_todo, graph_todo_to_activity
from sync_core.domain.merge import for_outlook
from sync_core.domain.model import Person

BOB = Person("Bob Buyer", "bob@acme.com")

ERP_MEETING: dict[str, Any] = {
    "id": 42, "kind": "meeting", "chrono": "MTG0042", "subject": "Visit", "start": "2024-06-03T08:00:00Z",
    "end": "2024-06-03T09:00:00Z", "all_day": False, "location": "Lyon", "notes": "Samples\nPrices",
    "partner_code": "ACME", "contact_id": 5, "representative": "R1", "participants": ["R1"], "public": True,
    "version": 1, "updated_at": "2024-06-01T10:00:00Z",
}  # fmt: skip


def test_erp_meeting_written_to_outlook_comes_back_as_a_noop_R22() -> None:
    erp = erp_activity_to_activity(ERP_MEETING, contact=BOB)
    first = decide_erp_change(kind=Kind.EVENT, item=erp, link=None, graph_item=None, settings=settings(), now=NOW)
    assert first.action is Action.CREATE
    body = activity_to_graph_event(erp)
    assert "attendees" not in body  # R31
    lnk = link(Kind.EVENT, first.fingerprint or "")
    # Graph notifies the write; delta hands the event back in Outlook's shape.
    seen = graph_event_to_activity(graph_echo(body, time_zone="Romance Standard Time"))
    echo = decide_outlook_change(kind=Kind.EVENT, item=seen, link=lnk, erp_item=erp, settings=settings(), now=NOW)
    assert (echo.action, echo.rule) == (Action.NOOP, "R22")


def test_outlook_meeting_imported_then_erp_echo_only_stamps_the_chrono_R12_R21_R22() -> None:
    outlook = {
        "id": "G1", "subject": "Lunch", "isAllDay": False, "type": "singleInstance", "sensitivity": "normal",
        "start": {"dateTime": "2024-06-03T12:00:00.0000000", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2024-06-03T13:00:00.0000000", "timeZone": "W. Europe Standard Time"},
        "body": {"contentType": "html", "content": "<div>Menu</div>"}, "categories": ["#ACME#"],
        "attendees": [{"emailAddress": {"name": "Bob Buyer", "address": "bob@acme.com"}}], "isOrganizer": True,
        "lastModifiedDateTime": "2024-06-01T10:00:00Z",
    }  # fmt: skip
    seen = graph_event_to_activity(outlook)
    d = decide_outlook_change(kind=Kind.EVENT, item=seen, link=None, erp_item=None, settings=settings(), now=NOW)
    assert (d.action, d.rule) == (Action.CREATE, "R12")
    stored = activity_to_erp(seen, representative="R1", contact_id=5, partner_code="ACME")
    assert stored["public"] is True
    lnk = link(Kind.EVENT, d.fingerprint or "", graph_id="G1")
    # The ERP gives it an id and a chrono and publishes the change.
    erp = erp_activity_to_activity({**stored, "id": 42, "chrono": "MTG0042", "version": 1}, contact=BOB)
    back = decide_erp_change(kind=Kind.EVENT, item=erp, link=lnk, graph_item=seen, settings=settings(), now=NOW)
    # Only the chrono is new; the meeting has an attendee, so only quiet properties are written (R31).
    assert (back.action, back.changed, back.quiet) == (Action.UPDATE, ("chrono",), True)
    body = activity_to_graph_event(for_outlook(erp, seen), quiet=True)
    assert set(body) == {"categories", "singleValueExtendedProperties"}
    # That write comes back from Graph: a no-op.
    lnk.fingerprint = back.fingerprint or ""
    after = graph_event_to_activity(graph_echo({**outlook, **body}, item_id="G1"))
    assert after.erp_id == "42" and after.chrono == "MTG0042"  # R21: the ERP id is on the Outlook item
    echo = decide_outlook_change(kind=Kind.EVENT, item=after, link=lnk, erp_item=erp, settings=settings(), now=NOW)
    assert echo.action is Action.NOOP


def test_erp_call_through_to_do_is_a_call_and_echoes_as_noop_R03_R22() -> None:
    rep = {**ERP_MEETING, "kind": "call", "chrono": "CLL0007", "id": 7, "end": None, "due": "2024-06-04",
           "time_spent_minutes": 12, "done": True}  # fmt: skip
    erp = erp_activity_to_activity(rep, contact=BOB)
    seen = graph_todo_to_activity(graph_echo(activity_to_graph_todo(erp), item_id="T7"))
    assert seen.kind.value == "call"
    d = decide_outlook_change(kind=Kind.CALL, item=seen, link=link(Kind.CALL, fingerprint(erp)), erp_item=erp,
                              settings=settings(), now=NOW)  # fmt: skip
    assert d.action is Action.NOOP


def test_two_way_contact_echo_is_a_noop_R17_R22() -> None:
    erp = erp_contact_to_contact(
        {"id": 3, "given_name": "Bob", "surname": "Buyer", "emails": ["Bob@Acme.com"], "partner_code": "ACME",
         "representatives": ["R1"], "business_phones": [], "updated_at": "2024-06-01T10:00:00Z"}
    )  # fmt: skip
    s = settings(contacts_two_way=True)
    d = decide_erp_change(kind=Kind.CONTACT, item=erp, link=None, graph_item=None, settings=s, now=NOW)
    assert d.action is Action.CREATE
    seen = graph_contact_to_contact(graph_echo(contact_to_graph_contact(erp)))
    assert seen.partner_code == "ACME" and seen.erp_id == "3"  # R11, R21
    echo = decide_outlook_change(kind=Kind.CONTACT, item=seen, link=link(Kind.CONTACT, d.fingerprint or ""),
                                 erp_item=erp, settings=s, now=NOW)  # fmt: skip
    assert echo.action is Action.NOOP
