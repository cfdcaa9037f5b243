"""Graph event ↔ canonical meeting: R01 fields, R07 all-day and multi-day, R08, R11, R21, R31, R33."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from domain_builders import all_day, graph_echo, meeting

from sync_core.domain.errors import MappingError
from sync_core.domain.fingerprint import fingerprint
from sync_core.domain.mapping.event import activity_to_graph_event, graph_event_to_activity
from sync_core.domain.mapping.properties import CHRONO, CONTACTS, ERP_ID, PARTICIPANTS
from sync_core.domain.model import ActivityKind, Person


def _props(body: dict[str, Any]) -> dict[str, str]:
    return {p["id"]: p["value"] for p in body["singleValueExtendedProperties"]}


def outlook_event(**kw: Any) -> dict[str, Any]:
    """An event as a user made it in Outlook and Graph returns it."""
    base: dict[str, Any] = {
        "id": "AAMkAGI2=",
        "changeKey": "DwAAABYAAAA",
        "lastModifiedDateTime": "2024-06-01T10:00:00.0000000Z",
        "subject": "Lunch with Acme",
        "body": {"contentType": "html", "content": "<html><body><div>Menu</div></body></html>"},
        "start": {"dateTime": "2024-06-03T12:00:00.0000000", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2024-06-03T13:30:00.0000000", "timeZone": "W. Europe Standard Time"},
        "isAllDay": False,
        "location": {"displayName": "Chez Paul"},
        "categories": ["Red category", "#ACME#"],
        "sensitivity": "normal",
        "type": "singleInstance",
        "isOrganizer": True,
        "attendees": [
            {"type": "required", "emailAddress": {"name": "Bob Buyer", "address": "bob@acme.com"}},
            {"type": "optional", "emailAddress": {"name": "Carla", "address": "carla@acme.com"}},
        ],
    }
    base.update(kw)
    return base


def test_outlook_event_fields_map_to_the_meeting_R01() -> None:
    a = graph_event_to_activity(outlook_event())
    assert a.kind is ActivityKind.MEETING
    assert a.subject == "Lunch with Acme"
    assert a.notes == "Menu"
    assert a.location == "Chez Paul"
    assert a.start == datetime(2024, 6, 3, 10, 0, tzinfo=UTC)  # R33: CEST → UTC
    assert a.end == datetime(2024, 6, 3, 11, 30, tzinfo=UTC)
    assert a.all_day is False and a.start_date is None
    assert a.graph_id == "AAMkAGI2=" and a.graph_change_key == "DwAAABYAAAA"
    assert a.modified_at == datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    assert a.erp_id is None and a.chrono is None


def test_first_attendee_is_the_contact_R08() -> None:
    a = graph_event_to_activity(outlook_event())
    assert a.contact == Person("Bob Buyer", "bob@acme.com")
    assert a.persons == (Person("Bob Buyer", "bob@acme.com"), Person("Carla", "carla@acme.com"))


def test_recorded_persons_come_before_attendees_and_are_not_repeated_R08() -> None:
    props = [{"id": CONTACTS, "value": json.dumps([{"name": "Zoe", "email": "zoe@acme.com"}])}]
    attendees = [
        {"emailAddress": {"name": "Zoé", "address": "ZOE@acme.com"}},
        {"emailAddress": {"name": "Bob", "address": "bob@acme.com"}},
    ]
    a = graph_event_to_activity(outlook_event(singleValueExtendedProperties=props, attendees=attendees))
    assert a.contact == Person("Zoe", "zoe@acme.com")
    assert [p.email for p in a.persons] == ["zoe@acme.com", "bob@acme.com"]


def test_partner_category_is_the_business_partner_R11() -> None:
    a = graph_event_to_activity(outlook_event())
    assert a.partner_code == "ACME"
    assert a.categories == ("Red category",)


def test_partner_is_written_as_a_code_category_R11() -> None:
    body = activity_to_graph_event(meeting(partner_code="ACME", categories=("Red category",)))
    assert body["categories"] == ["#ACME#", "Red category"]
    assert activity_to_graph_event(meeting(partner_code=None))["categories"] == []


def test_private_sensitivity_is_read_R05() -> None:
    assert graph_event_to_activity(outlook_event(sensitivity="private")).private is True
    assert graph_event_to_activity(outlook_event(sensitivity="normal")).private is False


@pytest.mark.parametrize("kind", ["singleInstance", "seriesMaster", "occurrence", "exception"])
def test_event_type_is_read_R06(kind: str) -> None:
    assert graph_event_to_activity(outlook_event(type=kind)).series_type == kind


def test_erp_id_chrono_participants_are_read_from_extended_properties_R01_R21() -> None:
    props = [
        {"id": ERP_ID.lower(), "value": "event:42"},
        {"id": CHRONO, "value": "MTG0042"},
        {"id": PARTICIPANTS, "value": '["R1","R7"]'},
        {"id": "String {00000000-0000-0000-0000-000000000000} Name Other", "value": "ignored"},
    ]
    a = graph_event_to_activity(outlook_event(singleValueExtendedProperties=props))
    assert a.erp_id == "42"
    assert a.chrono == "MTG0042"
    assert a.participants == ("R1", "R7")


def test_damaged_contacts_property_reads_as_no_recorded_persons_R08() -> None:
    props = [{"id": CONTACTS, "value": "{not json"}]
    a = graph_event_to_activity(outlook_event(singleValueExtendedProperties=props, attendees=[]))
    assert a.persons == () and a.contact is None


def test_meeting_is_written_without_attendees_and_persons_go_to_a_property_R31() -> None:
    a = meeting(persons=(Person("Bob Buyer", "bob@acme.com"), Person("Carla", "carla@acme.com")))
    body = activity_to_graph_event(a)
    assert "attendees" not in body
    assert "sensitivity" not in body
    assert json.loads(_props(body)[CONTACTS]) == [
        {"name": "Bob Buyer", "email": "bob@acme.com"},
        {"name": "Carla", "email": "carla@acme.com"},
    ]
    assert json.loads(_props(body)[PARTICIPANTS]) == ["R1"]


def test_meeting_body_carries_erp_id_and_chrono_R21_R01() -> None:
    body = activity_to_graph_event(meeting(erp_id="42", chrono="MTG0042"))
    assert _props(body)[ERP_ID] == "event:42"
    assert _props(body)[CHRONO] == "MTG0042"
    no_id = activity_to_graph_event(meeting(erp_id=None, chrono=None))
    assert ERP_ID not in _props(no_id) and CHRONO not in _props(no_id)


def test_changed_erp_contact_is_recorded_first_R08() -> None:
    a = meeting(contact=Person("New", "new@acme.com"), persons=(Person("Old", "old@acme.com"),))
    persons = json.loads(_props(activity_to_graph_event(a))[CONTACTS])
    assert [p["email"] for p in persons] == ["new@acme.com", "old@acme.com"]


def test_meeting_without_contact_records_no_persons_R08() -> None:
    body = activity_to_graph_event(meeting(contact=None, persons=()))
    assert json.loads(_props(body)[CONTACTS]) == []


def test_timed_meeting_is_written_in_utc_R33() -> None:
    body = activity_to_graph_event(meeting())
    assert body["isAllDay"] is False
    assert body["start"] == {"dateTime": "2024-06-03T08:00:00.0000000", "timeZone": "UTC"}
    assert body["end"] == {"dateTime": "2024-06-03T09:30:00.0000000", "timeZone": "UTC"}
    assert body["body"] == {"contentType": "text", "content": "Bring the samples"}
    assert body["location"] == {"displayName": "Lyon"}


def test_multi_day_meeting_keeps_its_span_R07() -> None:
    a = meeting(start=datetime(2024, 6, 3, 8, tzinfo=UTC), end=datetime(2024, 6, 6, 17, tzinfo=UTC))
    back = graph_event_to_activity(graph_echo(activity_to_graph_event(a), time_zone="Pacific Standard Time"))
    assert (back.start, back.end) == (a.start, a.end)


def test_all_day_meeting_keeps_its_days_in_any_zone_R07() -> None:
    event = outlook_event(
        isAllDay=True,
        start={"dateTime": "2024-05-01T00:00:00.0000000", "timeZone": "Tokyo Standard Time"},
        end={"dateTime": "2024-05-04T00:00:00.0000000", "timeZone": "Tokyo Standard Time"},
    )
    a = graph_event_to_activity(event)
    assert a.all_day is True
    assert (a.start_date, a.end_date) == (date(2024, 5, 1), date(2024, 5, 3))  # end inclusive
    assert a.start == datetime(2024, 5, 1, tzinfo=UTC) and a.end == datetime(2024, 5, 4, tzinfo=UTC)


def test_all_day_meeting_is_written_as_floating_midnights_R07() -> None:
    body = activity_to_graph_event(all_day(date(2024, 5, 1), date(2024, 5, 3)))
    assert body["isAllDay"] is True
    assert body["start"] == {"dateTime": "2024-05-01T00:00:00.0000000", "timeZone": "UTC"}
    assert body["end"] == {"dateTime": "2024-05-04T00:00:00.0000000", "timeZone": "UTC"}


def test_one_day_all_day_meeting_round_trips_R07() -> None:
    a = all_day(date(2024, 12, 31), date(2024, 12, 31))
    back = graph_event_to_activity(graph_echo(activity_to_graph_event(a)))
    assert (back.start_date, back.end_date) == (date(2024, 12, 31), date(2024, 12, 31))
    assert fingerprint(back) == fingerprint(a)


def test_meeting_without_start_cannot_be_written() -> None:
    with pytest.raises(MappingError, match="no start"):
        activity_to_graph_event(meeting(start=None, end=None, erp_id="9"))
    with pytest.raises(MappingError, match="no start date"):
        activity_to_graph_event(meeting(all_day=True, start_date=None, start=None, end=None))


def test_end_before_start_is_written_as_zero_length() -> None:
    body = activity_to_graph_event(meeting(end=datetime(2024, 6, 3, 7, tzinfo=UTC)))
    assert body["end"] == body["start"]


def test_event_without_start_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="start"):
        graph_event_to_activity(outlook_event(start=None))


def test_organised_meeting_with_attendees_would_mail_them_R31() -> None:
    assert graph_event_to_activity(outlook_event()).mails_attendees is True
    assert graph_event_to_activity(outlook_event(attendees=[])).mails_attendees is False
    assert graph_event_to_activity(outlook_event(isOrganizer=False)).mails_attendees is False


def test_quiet_body_holds_only_categories_and_properties_R31() -> None:
    body = activity_to_graph_event(meeting(erp_id="42"), quiet=True)
    assert set(body) == {"categories", "singleValueExtendedProperties"}


def test_outlook_event_round_trips_through_the_canonical_form() -> None:
    first = graph_event_to_activity(outlook_event())
    again = graph_event_to_activity(graph_echo(activity_to_graph_event(first), time_zone="Romance Standard Time"))
    assert fingerprint(again) == fingerprint(first)
    assert again.categories == first.categories
    assert again.persons[:2] == first.persons
