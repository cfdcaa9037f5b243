"""Scope rules and their helpers: R03 R05 R06 R08 R09 R10 R11 R13 R16 R17 R32 R34."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from domain_builders import NOW, all_day, call, contact, meeting, settings, task

from shared.envelope import Kind
from sync_core.domain.model import ActivityKind, ConflictPolicy, Person, UserSettings
from sync_core.domain.rules import (
    Skip,
    company_code,
    company_text,
    email_domain,
    erp_scope,
    first_contact,
    in_window,
    kind_of_chrono,
    outlook_scope,
    partner_resolution_order,
)

# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("#ACME#", "ACME"),
        ("  #ACME# ", "ACME"),
        ("Acme (#AC-01#)", "AC-01"),
        ("Acme", None),
        ("", None),
        (None, None),
        ("##", None),
        ("#A B#", None),
    ],
)
def test_company_code_reads_hash_syntax_R11(text: str | None, code: str | None) -> None:
    assert company_code(text) == code


def test_company_text_writes_hash_syntax_R11() -> None:
    assert company_text("ACME") == "#ACME#"
    assert company_code(company_text("X3-99")) == "X3-99"


@pytest.mark.parametrize(
    ("email", "domain"),
    [
        ("bob@Acme.COM", "acme.com"),
        (" bob@sub.acme.com ", "sub.acme.com"),
        ("weird@x@acme.com", "acme.com"),
        ("nobody", ""),
    ],
)
def test_email_domain_R10(email: str, domain: str) -> None:
    assert email_domain(email) == domain


def test_partner_resolution_order_is_customer_prospect_supplier_R10() -> None:
    assert partner_resolution_order == ("customer", "prospect", "supplier")


def test_first_contact_is_the_first_person_in_outlook_order_R08() -> None:
    a, b = Person("A", "a@x.com"), Person("B", "b@x.com")
    assert first_contact(meeting(contact=None, persons=(a, b))) == a
    assert first_contact(meeting(contact=b, persons=(a, b))) == b
    assert first_contact(meeting(contact=None, persons=())) is None


@pytest.mark.parametrize(
    ("chrono", "kind"),
    [
        ("CLL0001", ActivityKind.CALL),
        ("cll9", ActivityKind.CALL),
        ("TSK0001", ActivityKind.TASK),
        (" tsk1", ActivityKind.TASK),
        ("MTG1", None),
        ("", None),
        (None, None),
    ],
)
def test_chrono_prefix_tells_calls_from_tasks_R03(chrono: str | None, kind: ActivityKind | None) -> None:
    assert kind_of_chrono(chrono) is kind


# ---------------------------------------------------------------- settings


def test_settings_from_erp_representative_json_R16() -> None:
    s = UserSettings.from_erp(
        {
            "code": "R1",
            "name": "Ann",
            "email": " Ann.Rep@Example.com ",
            "sales_role": True,
            "active": True,
            "sync_enabled": True,
            "contacts_outlook_to_erp": False,
            "activities_outlook_to_erp": True,
            "activities_erp_to_outlook": False,
            "sync_meetings": True,
            "sync_tasks": False,
            "sync_calls": True,
            "sync_contacts": True,
            "contacts_two_way": True,
            "conflict_policy": "erp_wins",
            "window_days_back": 7,
            "window_days_ahead": 90,
            "version": 4,
        }
    )
    assert s.code == "R1" and s.email == "ann.rep@example.com" and s.name == "Ann"
    assert s.enabled
    assert not s.contacts_outlook_to_erp and not s.activities_erp_to_outlook and not s.sync_tasks
    assert s.contacts_two_way and s.conflict_policy is ConflictPolicy.ERP_WINS
    assert (s.window_days_back, s.window_days_ahead) == (7, 90)


def test_settings_defaults_are_one_way_contacts_last_modified_and_the_default_window_R17_R18_R34() -> None:
    s = UserSettings.from_erp(
        {
            "code": "R1",
            "email": "a@x.com",
            "sales_role": True,
            "sync_enabled": True,
            "conflict_policy": "nonsense",
            "window_days_back": "x",
        }
    )
    assert s.enabled
    assert s.contacts_two_way is False
    assert s.conflict_policy is ConflictPolicy.LAST_MODIFIED
    assert (s.window_days_back, s.window_days_ahead) == (30, 365)
    assert s.contacts_outlook_to_erp and s.activities_outlook_to_erp and s.activities_erp_to_outlook


@pytest.mark.parametrize(
    "missing",
    [{"code": None}, {"code": ""}, {"sales_role": False}, {"email": None}, {"active": False}, {"sync_enabled": False}],
)
def test_user_without_code_role_mailbox_or_switch_is_not_enabled_R13_R16(missing: dict[str, object]) -> None:
    rep: dict[str, object] = {
        "code": "R1",
        "email": "a@x.com",
        "sales_role": True,
        "active": True,
        "sync_enabled": True,
    }
    rep.update(missing)
    assert UserSettings.from_erp(rep).enabled is False


def test_representative_json_without_sales_role_is_not_enabled_R13() -> None:
    assert UserSettings.from_erp({"code": "R1", "email": "a@x.com", "sync_enabled": True}).enabled is False


# ---------------------------------------------------------------- Outlook → ERP scope


def test_in_scope_outlook_meeting_passes() -> None:
    assert outlook_scope(Kind.EVENT, meeting(), settings(), NOW) is None


def test_private_event_is_not_sent_to_erp_R05() -> None:
    skip = outlook_scope(Kind.EVENT, meeting(private=True), settings(), NOW)
    assert skip == Skip("R05", skip.reason if skip else "", unlink=True)
    assert skip is not None and "private" in skip.reason


@pytest.mark.parametrize("series", ["seriesMaster", "occurrence", "exception"])
def test_recurring_event_is_skipped_and_says_so_R06(series: str) -> None:
    skip = outlook_scope(Kind.EVENT, meeting(series_type=series), settings(), NOW)
    assert skip is not None and skip.rule == "R06" and series in skip.reason


def test_single_instance_event_is_not_recurring_R06() -> None:
    assert outlook_scope(Kind.EVENT, meeting(series_type="singleInstance"), settings(), NOW) is None


@pytest.mark.parametrize(
    ("changes", "missing"),
    [
        ({"given_name": None}, "given name"),
        ({"surname": "  "}, "surname"),
        ({"emails": ()}, "e-mail"),
        ({"emails": (" ",)}, "e-mail"),
    ],
)
def test_incomplete_contact_is_not_synced_and_says_why_R09(changes: dict[str, object], missing: str) -> None:
    skip = outlook_scope(Kind.CONTACT, contact(**changes), settings(), NOW)
    assert skip is not None and skip.rule == "R09" and missing in skip.reason and skip.unlink is False


def test_contact_missing_everything_lists_every_field_R09() -> None:
    skip = outlook_scope(Kind.CONTACT, contact(given_name=None, surname=None, emails=()), settings(), NOW)
    assert skip is not None and skip.reason == "contact has no given name, no surname, no e-mail address"


def test_complete_contact_passes_R09() -> None:
    assert outlook_scope(Kind.CONTACT, contact(), settings(), NOW) is None


def test_contacts_outlook_to_erp_switch_R16() -> None:
    skip = outlook_scope(Kind.CONTACT, contact(), settings(contacts_outlook_to_erp=False), NOW)
    assert skip is not None and skip.rule == "R16" and skip.unlink


def test_activities_outlook_to_erp_switch_R16() -> None:
    for kind, item in ((Kind.EVENT, meeting()), (Kind.TASK, task()), (Kind.CALL, call())):
        skip = outlook_scope(kind, item, settings(activities_outlook_to_erp=False), NOW)
        # ERP → Outlook still runs on the link: it stays (R32 unlinks only what leaves the sync entirely).
        assert skip is not None and skip.rule == "R16" and not skip.unlink
        both_off = settings(activities_outlook_to_erp=False, activities_erp_to_outlook=False)
        skip = outlook_scope(kind, item, both_off, NOW)
        assert skip is not None and skip.rule == "R16" and skip.unlink


@pytest.mark.parametrize(
    ("kind", "switch", "make"),
    [
        (Kind.EVENT, "sync_meetings", meeting),
        (Kind.TASK, "sync_tasks", task),
        (Kind.CALL, "sync_calls", call),
        (Kind.CONTACT, "sync_contacts", contact),
    ],
)
def test_per_object_switches_R16(kind: Kind, switch: str, make: object) -> None:
    item = make()  # type: ignore[operator]
    assert outlook_scope(kind, item, settings(), NOW) is None
    assert erp_scope(kind, item, settings(contacts_two_way=True), NOW) is None
    off = settings(**{switch: False, "contacts_two_way": True})
    for scope in (outlook_scope, erp_scope):
        skip = scope(kind, item, off, NOW)
        assert skip is not None and skip.rule == "R16" and skip.unlink


def test_disabled_user_leaves_scope_and_unlinks_R16_R32() -> None:
    for off in (settings(active=False), settings(sync_enabled=False), settings(email=None)):
        skip = outlook_scope(Kind.EVENT, meeting(), off, NOW)
        assert skip is not None and skip.rule == "R16" and skip.unlink


def test_user_without_sales_role_is_never_synced_R13() -> None:
    for s in (settings(sales_role=False), settings(code=None)):
        for scope in (outlook_scope, erp_scope):
            skip = scope(Kind.EVENT, meeting(), s, NOW)
            assert skip is not None and skip.rule == "R13"


def test_meeting_outside_window_is_skipped_and_unlinked_R34_R32() -> None:
    old = meeting(start=NOW - timedelta(days=40), end=NOW - timedelta(days=40) + timedelta(hours=1))
    far = meeting(start=NOW + timedelta(days=400), end=NOW + timedelta(days=400, hours=1))
    for item in (old, far):
        skip = outlook_scope(Kind.EVENT, item, settings(), NOW)
        assert skip is not None and skip.rule == "R34" and skip.unlink
        skip = erp_scope(Kind.EVENT, item, settings(), NOW)
        assert skip is not None and skip.rule == "R34" and skip.unlink


def test_window_edges_are_inside_R34() -> None:
    s = settings(window_days_back=30, window_days_ahead=365)
    edge_back = meeting(start=NOW - timedelta(days=31), end=NOW - timedelta(days=30))
    edge_ahead = meeting(start=NOW + timedelta(days=365), end=NOW + timedelta(days=365, hours=1))
    assert in_window(edge_back, s, NOW) and in_window(edge_ahead, s, NOW)
    assert not in_window(meeting(start=NOW - timedelta(days=31), end=NOW - timedelta(days=30, seconds=1)), s, NOW)


def test_long_meeting_reaching_into_window_is_inside_R07_R34() -> None:
    long = meeting(start=NOW - timedelta(days=60), end=NOW - timedelta(days=10))
    assert in_window(long, settings(), NOW)


def test_window_follows_the_user_settings_R34() -> None:
    item = meeting(start=NOW - timedelta(days=10), end=NOW - timedelta(days=10) + timedelta(hours=1))
    assert in_window(item, settings(window_days_back=30), NOW)
    assert not in_window(item, settings(window_days_back=5), NOW)


def test_all_day_window_uses_its_days_R07_R34() -> None:
    day = (NOW - timedelta(days=30)).date()
    assert in_window(all_day(day, day), settings(), NOW)
    old = (NOW - timedelta(days=32)).date()
    assert not in_window(all_day(old, old), settings(), NOW)


def test_tasks_window_uses_start_and_due_and_undated_tasks_are_inside_R34() -> None:
    assert in_window(task(start=None, due=None), settings(), NOW)
    assert not in_window(task(start=None, due=date(2023, 1, 1)), settings(), NOW)
    assert in_window(task(start=datetime(2023, 1, 1, tzinfo=UTC), due=date(2024, 6, 5)), settings(), NOW)


# ---------------------------------------------------------------- ERP → Outlook scope


def test_erp_activity_of_another_representative_is_not_synced_R13() -> None:
    skip = erp_scope(Kind.EVENT, meeting(representative="R2"), settings(), NOW)
    assert skip is not None and skip.rule == "R13" and skip.unlink and "R2" in skip.reason


def test_erp_activity_without_representative_is_not_synced_R13() -> None:
    skip = erp_scope(Kind.TASK, task(representative=None), settings(), NOW)
    assert skip is not None and skip.rule == "R13"


def test_activities_erp_to_outlook_switch_R16() -> None:
    skip = erp_scope(Kind.EVENT, meeting(), settings(activities_erp_to_outlook=False), NOW)
    assert skip is not None and skip.rule == "R16" and not skip.unlink  # Outlook → ERP still uses the link
    both_off = settings(activities_erp_to_outlook=False, activities_outlook_to_erp=False)
    skip = erp_scope(Kind.EVENT, meeting(), both_off, NOW)
    assert skip is not None and skip.rule == "R16" and skip.unlink


def test_contacts_go_to_outlook_only_when_two_way_R17() -> None:
    skip = erp_scope(Kind.CONTACT, contact(), settings(), NOW)
    assert skip is not None and skip.rule == "R17"
    assert erp_scope(Kind.CONTACT, contact(), settings(contacts_two_way=True), NOW) is None


def test_one_way_contact_changed_in_the_erp_keeps_its_link_R17_R20() -> None:
    # The link still carries Outlook edits and deletions (R20: the assignment is removed) to the ERP.
    skip = erp_scope(Kind.CONTACT, contact(), settings(), NOW)
    assert skip is not None and not skip.unlink
    skip = erp_scope(Kind.CONTACT, contact(), settings(contacts_outlook_to_erp=False), NOW)
    assert skip is not None and skip.unlink


def test_one_way_contact_unassigned_in_the_erp_leaves_scope_and_unlinks_R13_R32() -> None:
    skip = erp_scope(Kind.CONTACT, contact(representatives=("R2",)), settings(), NOW)
    assert skip is not None and skip.rule == "R13" and skip.unlink


def test_erp_contact_not_assigned_to_the_user_is_not_synced_R13() -> None:
    skip = erp_scope(Kind.CONTACT, contact(representatives=("R2",)), settings(contacts_two_way=True), NOW)
    assert skip is not None and skip.rule == "R13" and skip.unlink


def test_incomplete_erp_contact_is_not_sent_to_outlook_R09() -> None:
    skip = erp_scope(Kind.CONTACT, contact(emails=()), settings(contacts_two_way=True), NOW)
    assert skip is not None and skip.rule == "R09"


def test_private_erp_activity_still_goes_to_its_owner_R05() -> None:
    # R05 is about Outlook-private items; an ERP non-public activity belongs in its owner's mailbox.
    assert erp_scope(Kind.EVENT, meeting(public=False), settings(), NOW) is None


@pytest.mark.parametrize(
    ("person", "given", "surname"),
    [
        (Person("Bob Buyer", "bob@acme.com"), "Bob", "Buyer"),
        (Person("Anne Marie de la Tour", "a@x.com"), "Anne", "Marie de la Tour"),
        (Person("Cher", "cher@x.com"), "Cher", "Cher"),
        (Person("", "j.doe@x.com"), "j.doe", "j.doe"),
    ],
)
def test_unknown_task_contact_becomes_a_complete_erp_contact_R14_R09(person: Person, given: str, surname: str) -> None:
    from sync_core.domain.rules import contact_for_person, missing_contact_fields

    c = contact_for_person(person)
    assert (c.given_name, c.surname, c.emails) == (given, surname, (person.email,))
    assert missing_contact_fields(c) == []
