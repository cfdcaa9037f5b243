"""R22: the fingerprint changes with a synced field and with nothing else."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from domain_builders import all_day, call, contact, meeting, outlook_html, task

from sync_core.domain.fingerprint import fingerprint, synced_fields
from sync_core.domain.model import Person
from sync_core.domain.notes import html_to_text


def test_fingerprint_is_a_stable_hex_digest_R22() -> None:
    assert fingerprint(meeting()) == fingerprint(meeting())
    assert len(fingerprint(meeting())) == 64 and int(fingerprint(meeting()), 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"subject": "Other"},
        {"start": datetime(2024, 6, 3, 8, 1, tzinfo=UTC)},
        {"end": datetime(2024, 6, 3, 10, 0, tzinfo=UTC)},
        {"location": "Paris"},
        {"notes": "Other notes"},
        {"partner_code": "BETA"},
        {"contact": Person("Zed", "zed@acme.com")},
        {"participants": ("R1", "R2")},
        {"chrono": "MTG9"},
    ],
)
def test_each_synced_meeting_field_changes_the_fingerprint_R01_R22(change: dict[str, Any]) -> None:
    assert fingerprint(replace(meeting(), **change)) != fingerprint(meeting())


@pytest.mark.parametrize(
    "change",
    [
        {"subject": "Other"},
        {"start": datetime(2024, 6, 2, 8, tzinfo=UTC)},
        {"due": date(2024, 6, 11)},
        {"done": True},
        {"notes": "x"},
        {"partner_code": None},
        {"contact": None, "persons": ()},
        {"time_spent_minutes": 31},
        {"chrono": "TSK2"},
    ],
)
def test_each_synced_task_field_changes_the_fingerprint_R02_R03_R22(change: dict[str, Any]) -> None:
    assert fingerprint(replace(task(), **change)) != fingerprint(task())


@pytest.mark.parametrize(
    "change",
    [
        {"given_name": "Robert"},
        {"surname": "Seller"},
        {"emails": ("bob@acme.com", "b@x.com")},
        {"business_phones": ()},
        {"mobile_phone": None},
        {"job_title": "CEO"},
        {"partner_code": "BETA"},
    ],
)
def test_each_synced_contact_field_changes_the_fingerprint_R04_R22(change: dict[str, Any]) -> None:
    assert fingerprint(replace(contact(), **change)) != fingerprint(contact())


@pytest.mark.parametrize(
    "change",
    [
        {"erp_id": "1", "graph_id": "G", "modified_at": datetime(2030, 1, 1, tzinfo=UTC)},
        {"representative": "R9", "public": False, "private": False, "series_type": "singleInstance"},
        {"categories": ("Red",), "mails_attendees": True, "graph_change_key": "ck", "erp_version": 9},
        {"persons": (Person("Bob Buyer", "bob@acme.com"), Person("Carla", "carla@acme.com"))},
        {"contact_id": 99, "outlook_status": "inProgress"},
    ],
)
def test_ids_bookkeeping_and_one_sided_fields_do_not_count_R22(change: dict[str, Any]) -> None:
    assert fingerprint(replace(meeting(), **change)) == fingerprint(meeting())


def test_contact_ids_company_text_group_and_assignments_do_not_count_R22() -> None:
    changed = replace(
        contact(),
        erp_id="7",
        graph_id="G",
        company="Acme Corp",
        group="EXCHANGE",
        representatives=("R1", "R2"),
        erp_version=3,
    )
    assert fingerprint(changed) == fingerprint(contact())


def test_html_body_and_text_notes_fingerprint_alike_R22() -> None:
    text = "Line one\n\nLine  two & <three>"
    assert fingerprint(meeting(notes=html_to_text(outlook_html(text)))) == fingerprint(meeting(notes=text))


def test_empty_and_missing_are_alike_R22() -> None:
    assert fingerprint(meeting(location="")) == fingerprint(meeting(location=None))
    assert fingerprint(meeting(notes="  ")) == fingerprint(meeting(notes=None))
    assert fingerprint(task(time_spent_minutes=0)) == fingerprint(task(time_spent_minutes=None))
    assert fingerprint(contact(mobile_phone="")) == fingerprint(contact(mobile_phone=None))


def test_sub_second_precision_is_ignored_R22() -> None:
    m = meeting()
    assert m.start is not None
    assert fingerprint(replace(m, start=m.start + timedelta(microseconds=123456))) == fingerprint(m)


def test_same_instant_in_any_zone_is_the_same_R33() -> None:
    from zoneinfo import ZoneInfo

    m = meeting()
    assert m.start is not None and m.end is not None
    paris = ZoneInfo("Europe/Paris")
    assert fingerprint(replace(m, start=m.start.astimezone(paris), end=m.end.astimezone(paris))) == fingerprint(m)


def test_email_case_and_contact_name_do_not_count_R22() -> None:
    assert fingerprint(contact(emails=("BOB@Acme.com",))) == fingerprint(contact())
    # The ERP knows the contact by its record, Outlook by an attendee's display name.
    assert fingerprint(meeting(contact=Person("Robert B.", "Bob@acme.com"))) == fingerprint(meeting())


def test_all_day_meetings_compare_by_days_R07() -> None:
    a = all_day(date(2024, 5, 1), date(2024, 5, 3))
    assert fingerprint(a) != fingerprint(all_day(date(2024, 5, 1), date(2024, 5, 4)))
    assert fingerprint(a) != fingerprint(meeting())
    assert synced_fields(a)["days"] == ["2024-05-01", "2024-05-03"]


def test_end_before_start_counts_as_zero_length_R22() -> None:
    m = meeting()
    assert m.start is not None
    assert fingerprint(replace(m, end=m.start - timedelta(hours=1))) == fingerprint(replace(m, end=m.start))


def test_task_and_call_differ_R03() -> None:
    assert fingerprint(task()) != fingerprint(replace(call(), subject=task().subject, chrono=task().chrono))


def test_participants_order_does_not_count_R01() -> None:
    assert fingerprint(meeting(participants=("R2", "R1"))) == fingerprint(meeting(participants=("R1", "R2")))
