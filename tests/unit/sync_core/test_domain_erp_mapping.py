"""ERP JSON ↔ canonical: activities (R01–R03, R07, R12) and contacts (R04, R10)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from domain_builders import contact, meeting, task

from sync_core.domain.errors import MappingError
from sync_core.domain.mapping.erp import (
    activity_to_erp,
    contact_to_erp,
    erp_activity_to_activity,
    erp_contact_to_contact,
    format_instant,
)
from sync_core.domain.model import ActivityKind, Person


def erp_meeting(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 42,
        "kind": "meeting",
        "chrono": "MTG0042",
        "subject": "Visit Acme",
        "start": "2024-06-03T08:00:00Z",
        "end": "2024-06-03T09:30:00Z",
        "due": None,
        "all_day": False,
        "location": "Lyon",
        "notes": "Bring the samples",
        "done": False,
        "partner_code": "ACME",
        "contact_id": 5,
        "representative": "R1",
        "participants": ["R1", "R2"],
        "public": False,
        "origin": "erp",
        "time_spent_minutes": None,
        "version": 3,
        "updated_at": "2024-06-01T10:00:00Z",
        "deleted": False,
    }
    base.update(kw)
    return base


def test_erp_meeting_fields_map_R01() -> None:
    a = erp_activity_to_activity(erp_meeting(), contact=Person("Bob", "bob@acme.com"))
    assert a.kind is ActivityKind.MEETING
    assert a.erp_id == "42" and a.chrono == "MTG0042" and a.erp_version == 3
    assert a.start == datetime(2024, 6, 3, 8, tzinfo=UTC) and a.end == datetime(2024, 6, 3, 9, 30, tzinfo=UTC)
    assert a.subject == "Visit Acme" and a.location == "Lyon" and a.notes == "Bring the samples"
    assert a.partner_code == "ACME" and a.contact_id == 5
    assert a.contact == Person("Bob", "bob@acme.com") and a.persons == (a.contact,)
    assert a.participants == ("R1", "R2") and a.representative == "R1"
    assert a.public is False
    assert a.modified_at == datetime(2024, 6, 1, 10, tzinfo=UTC)


def test_embedded_contact_object_is_used_when_no_contact_is_given_R08() -> None:
    a = erp_activity_to_activity(erp_meeting(contact={"name": "Bob", "email": "bob@acme.com"}))
    assert a.contact == Person("Bob", "bob@acme.com")


def test_erp_all_day_days_are_inclusive_and_exact_R07() -> None:
    a = erp_activity_to_activity(erp_meeting(all_day=True, start="2024-05-01", end="2024-05-03"))
    assert a.all_day and (a.start_date, a.end_date) == (date(2024, 5, 1), date(2024, 5, 3))


def test_erp_all_day_midnight_datetime_end_is_exclusive_R07() -> None:
    a = erp_activity_to_activity(erp_meeting(all_day=True, start="2024-05-01T00:00:00Z", end="2024-05-04T00:00:00Z"))
    assert (a.start_date, a.end_date) == (date(2024, 5, 1), date(2024, 5, 3))


def test_erp_all_day_without_end_is_one_day_R07() -> None:
    a = erp_activity_to_activity(erp_meeting(all_day=True, start="2024-05-01", end=None))
    assert a.end_date == date(2024, 5, 1)


def test_erp_all_day_without_start_is_a_mapping_error_R07() -> None:
    with pytest.raises(MappingError):
        erp_activity_to_activity(erp_meeting(all_day=True, start=None, end=None))


def test_bad_erp_date_is_a_mapping_error() -> None:
    with pytest.raises(MappingError):
        erp_activity_to_activity(erp_meeting(all_day=True, start="2024-13-45"))


def test_erp_task_reads_start_and_due_day_R02() -> None:
    a = erp_activity_to_activity(
        erp_meeting(
            kind="task",
            chrono="TSK1",
            start="2024-06-02T07:00:00Z",
            end=None,
            due="2024-06-10",
            done=True,
            time_spent_minutes=45,
        )
    )
    assert a.kind is ActivityKind.TASK
    assert a.start == datetime(2024, 6, 2, 7, tzinfo=UTC) and a.end is None and a.due == date(2024, 6, 10)
    assert a.done is True and a.time_spent_minutes == 45


def test_erp_task_due_falls_back_to_end_R02() -> None:
    a = erp_activity_to_activity(erp_meeting(kind="task", end="2024-06-10T00:00:00Z", due=None))
    assert a.due == date(2024, 6, 10)


def test_erp_kind_falls_back_to_chrono_prefix_R03() -> None:
    assert erp_activity_to_activity(erp_meeting(kind=None, chrono="CLL9")).kind is ActivityKind.CALL
    assert erp_activity_to_activity(erp_meeting(kind="bogus", chrono="TSK9")).kind is ActivityKind.TASK


def test_imported_activity_is_public_and_marked_from_outlook_R12() -> None:
    body = activity_to_erp(meeting(public=None), representative="R1", contact_id=5, partner_code="ACME")
    assert body["public"] is True
    assert body["origin"] == "outlook"


def test_update_keeps_the_erp_public_setting_and_sends_no_origin_R12() -> None:
    body = activity_to_erp(meeting(public=False, erp_id="42"), representative="R1", contact_id=None, partner_code=None)
    assert body["public"] is False and "origin" not in body
    # An update that doesn't know the ERP's setting leaves it alone.
    body = activity_to_erp(meeting(public=None, erp_id="42"), representative="R1", contact_id=None, partner_code=None)
    assert "public" not in body and "origin" not in body


def test_create_flag_overrides_the_erp_id_guess_R12() -> None:
    assert "origin" in activity_to_erp(
        meeting(erp_id="42"), representative="R1", contact_id=None, partner_code=None, create=True
    )
    assert "origin" not in activity_to_erp(
        meeting(erp_id=None), representative="R1", contact_id=None, partner_code=None, create=False
    )


def test_activity_to_erp_body_fields_R01() -> None:
    body = activity_to_erp(meeting(), representative="R1", contact_id=5, partner_code="ACME")
    assert body == {  # exactly the fields erp-connector's ActivityCreate accepts
        "kind": "meeting",
        "subject": "Visit Acme",
        "location": "Lyon",
        "notes": "Bring the samples",
        "done": False,
        "partner_code": "ACME",
        "contact_id": 5,
        "representative": "R1",
        "participants": ["R1"],
        "public": True,
        "origin": "outlook",
        "time_spent_minutes": None,
        "all_day": False,
        "start": "2024-06-03T08:00:00Z",
        "end": "2024-06-03T09:30:00Z",
        "due": None,
        "chrono": "MTG0001",
    }


def test_partner_and_representative_come_from_the_caller_R11_R13() -> None:
    body = activity_to_erp(meeting(partner_code="ACME"), representative="R9", contact_id=None, partner_code="BETA")
    assert body["partner_code"] == "BETA" and body["representative"] == "R9"


def test_chrono_is_left_to_the_erp_when_unknown_R01() -> None:
    assert "chrono" not in activity_to_erp(
        meeting(chrono=None), representative="R1", contact_id=None, partner_code=None
    )


def test_all_day_goes_to_the_erp_as_utc_midnights_end_exclusive_R07() -> None:
    a = meeting(all_day=True, start_date=date(2024, 5, 1), end_date=date(2024, 5, 3))
    body = activity_to_erp(a, representative="R1", contact_id=None, partner_code=None)
    assert (body["all_day"], body["start"], body["end"]) == (True, "2024-05-01T00:00:00Z", "2024-05-04T00:00:00Z")
    back = erp_activity_to_activity({**body, "id": 1})
    assert (back.start_date, back.end_date) == (date(2024, 5, 1), date(2024, 5, 3))


def test_meeting_ending_before_it_starts_goes_to_the_erp_as_zero_length_R15() -> None:
    a = meeting(end=datetime(2024, 6, 3, 7, tzinfo=UTC))
    body = activity_to_erp(a, representative="R1", contact_id=None, partner_code=None)
    assert body["end"] == body["start"]


def test_task_goes_to_the_erp_with_a_due_day_R02() -> None:
    body = activity_to_erp(task(), representative="R1", contact_id=None, partner_code=None)
    assert body["start"] == "2024-06-02T07:00:00Z" and body["due"] == "2024-06-10T00:00:00Z"
    assert "end" not in body  # the ERP mirrors `due` into `end`
    assert body["time_spent_minutes"] == 30 and body["all_day"] is False


def test_instants_keep_sub_seconds_only_when_present() -> None:
    assert format_instant(datetime(2024, 1, 1, 8, tzinfo=UTC)) == "2024-01-01T08:00:00Z"
    assert format_instant(datetime(2024, 1, 1, 8, 0, 0, 5, tzinfo=UTC)) == "2024-01-01T08:00:00.000005Z"
    assert format_instant(None) is None


def test_erp_contact_fields_map_R04() -> None:
    c = erp_contact_to_contact(
        {
            "id": 7,
            "given_name": "Bob",
            "surname": "Buyer",
            "emails": ["bob@acme.com"],
            "business_phones": ["+33 1"],
            "mobile_phone": "+33 6",
            "job_title": "Buyer",
            "partner_code": None,
            "group": "EXCHANGE",
            "representatives": ["R1", "R2"],
            "origin": "outlook",
            "version": 2,
            "updated_at": "2024-06-01T10:00:00Z",
            "deleted": False,
        }
    )
    assert (c.erp_id, c.given_name, c.surname, c.emails) == ("7", "Bob", "Buyer", ("bob@acme.com",))
    assert c.group == "EXCHANGE" and c.partner_code is None and c.representatives == ("R1", "R2")
    assert c.erp_version == 2 and c.modified_at == datetime(2024, 6, 1, 10, tzinfo=UTC)


def test_contact_without_partner_goes_to_the_exchange_group_R10() -> None:
    body = contact_to_erp(contact(partner_code=None), representative="R1", partner_code=None, group=None)
    assert body["group"] == "EXCHANGE" and body["partner_code"] is None


def test_contact_with_partner_has_no_group_R10_R11() -> None:
    body = contact_to_erp(contact(), representative="R1", partner_code="ACME", group="EXCHANGE")
    assert body["partner_code"] == "ACME" and body["group"] is None


def test_contact_keeps_other_representatives_and_adds_the_user_R20() -> None:
    body = contact_to_erp(contact(representatives=("R2",)), representative="R1", partner_code=None, group=None)
    assert body["representatives"] == ["R2", "R1"]
    body = contact_to_erp(contact(representatives=("R1",)), representative="R1", partner_code=None, group=None)
    assert body["representatives"] == ["R1"]


def test_contact_to_erp_body_fields_R04() -> None:
    body = contact_to_erp(contact(), representative="R1", partner_code="ACME", group=None)
    assert body["given_name"] == "Bob" and body["surname"] == "Buyer" and body["emails"] == ["bob@acme.com"]
    assert body["business_phones"] == ["+33 1 23 45 67 89"] and body["mobile_phone"] == "+33 6 00 00 00 00"
    assert body["job_title"] == "Buyer" and body["origin"] == "outlook"
    # An update never sends `origin` (the ERP refuses it there).
    assert "origin" not in contact_to_erp(contact(erp_id="7"), representative="R1", partner_code="ACME", group=None)


def test_erp_contact_record_gives_the_activity_contact_person_R08() -> None:
    from sync_core.domain.mapping.erp import erp_contact_person

    rec = {"id": 5, "given_name": "Bob", "surname": "Buyer", "emails": ["bob@acme.com", "b@x.com"]}
    assert erp_contact_person(rec) == Person("Bob Buyer", "bob@acme.com")
    assert erp_contact_person({"emails": ["x@y.com"]}) == Person("x@y.com", "x@y.com")
    assert erp_contact_person({"given_name": "Solo"}) == Person("Solo", "")
    assert erp_contact_person({}) is None
