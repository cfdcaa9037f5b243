"""Decisions for one changed item: scope, echo, conflicts, deletions (R05–R34)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from domain_builders import NOW, call, contact, link, meeting, settings, task

from shared.envelope import Kind
from sync_core.domain.decide import (
    Action,
    Decision,
    changed_fields,
    decide_erp_change,
    decide_outlook_change,
    winner_of,
)
from sync_core.domain.fingerprint import fingerprint
from sync_core.domain.model import ConflictPolicy, Direction, Person

EARLY = datetime(2024, 6, 1, 9, 30, tzinfo=UTC)
LATE = datetime(2024, 6, 1, 11, 0, tzinfo=UTC)


def from_outlook(item, *, kind=Kind.EVENT, lnk=None, erp=None, s=None):  # type: ignore[no-untyped-def]
    return decide_outlook_change(kind=kind, item=item, link=lnk, erp_item=erp, settings=s or settings(), now=NOW)


def from_erp(item, *, kind=Kind.EVENT, lnk=None, graph=None, s=None):  # type: ignore[no-untyped-def]
    return decide_erp_change(kind=kind, item=item, link=lnk, graph_item=graph, settings=s or settings(), now=NOW)


SYNCED = meeting()
SYNCED_LINK = link(Kind.EVENT, fingerprint(SYNCED))


# ---------------------------------------------------------------- scope first


def test_private_event_is_not_sent_to_erp_R05() -> None:
    d = from_outlook(meeting(private=True))
    assert (d.action, d.rule) == (Action.SKIP, "R05")


def test_linked_event_made_private_is_unlinked_not_deleted_R05_R32() -> None:
    d = from_outlook(meeting(private=True, subject="secret"), lnk=SYNCED_LINK, erp=SYNCED)
    assert (d.action, d.rule) == (Action.UNLINK, "R05")
    assert "nothing deleted" in d.reason


@pytest.mark.parametrize("series", ["seriesMaster", "occurrence", "exception"])
def test_recurring_event_is_skipped_with_the_rule_R06(series: str) -> None:
    d = from_outlook(meeting(series_type=series))
    assert (d.action, d.rule) == (Action.SKIP, "R06")
    assert series in d.reason


def test_incomplete_contact_is_skipped_even_when_linked_R09() -> None:
    c = contact(emails=())
    assert from_outlook(c, kind=Kind.CONTACT).action is Action.SKIP
    d = from_outlook(c, kind=Kind.CONTACT, lnk=link(Kind.CONTACT, fingerprint(contact())), erp=contact())
    assert (d.action, d.rule) == (Action.SKIP, "R09")


def test_switched_off_kind_unlinks_linked_items_and_skips_new_ones_R16_R32() -> None:
    off = settings(sync_meetings=False)
    assert from_outlook(meeting(), s=off).action is Action.SKIP
    d = from_outlook(meeting(subject="new"), lnk=SYNCED_LINK, erp=SYNCED, s=off)
    assert (d.action, d.rule) == (Action.UNLINK, "R16")


def test_outlook_item_outside_window_is_unlinked_R34_R32() -> None:
    old = meeting(start=NOW - timedelta(days=90), end=NOW - timedelta(days=90, hours=-1))
    d = from_outlook(old, lnk=SYNCED_LINK, erp=SYNCED)
    assert (d.action, d.rule) == (Action.UNLINK, "R34")
    assert from_outlook(old).action is Action.SKIP


def test_kind_mismatch_fails_loudly_R35() -> None:
    d = from_outlook(task(), kind=Kind.CALL)
    assert d.action is Action.FAIL and "task" in d.reason and d == Decision.fail(d.reason)


# ---------------------------------------------------------------- Outlook → ERP writes


def test_new_outlook_meeting_is_created_in_erp_as_public_R12() -> None:
    item = meeting(erp_id=None, chrono=None)
    d = from_outlook(item)
    assert (d.action, d.rule, d.fingerprint) == (Action.CREATE, "R12", fingerprint(item))


@pytest.mark.parametrize(("make", "kind"), [(task, Kind.TASK), (call, Kind.CALL)])
def test_new_outlook_task_or_call_is_created_R02_R03(make, kind) -> None:  # type: ignore[no-untyped-def]
    assert from_outlook(make(), kind=kind).action is Action.CREATE


def test_new_outlook_contact_is_created_R04() -> None:
    d = from_outlook(contact(), kind=Kind.CONTACT)
    assert d.action is Action.CREATE and d.fingerprint == fingerprint(contact())


def test_echo_of_a_sync_write_is_a_noop_R22() -> None:
    echoed = replace(SYNCED, graph_id="G1", graph_change_key="ck2", modified_at=LATE, categories=("Red",))
    d = from_outlook(echoed, lnk=SYNCED_LINK, erp=SYNCED)
    assert (d.action, d.rule) == (Action.NOOP, "R22")


def test_outlook_change_updates_the_erp() -> None:
    changed = replace(SYNCED, subject="Moved", location="Paris", modified_at=LATE)
    d = from_outlook(changed, lnk=SYNCED_LINK, erp=SYNCED)
    assert d.action is Action.UPDATE and d.fingerprint == fingerprint(changed)
    assert d.changed == ("location", "subject") and d.winner is None


def test_both_changed_later_outlook_change_wins_R18() -> None:
    outlook = replace(SYNCED, subject="Outlook", modified_at=LATE)
    erp = replace(SYNCED, subject="ERP", modified_at=EARLY)
    d = from_outlook(outlook, lnk=SYNCED_LINK, erp=erp)
    assert (d.action, d.rule, d.winner) == (Action.UPDATE, "R18", Direction.OUTLOOK_TO_ERP)
    assert d.fingerprint == fingerprint(outlook)


def test_both_changed_later_erp_change_wins_and_outlook_change_is_journaled_R18() -> None:
    outlook = replace(SYNCED, subject="Outlook", modified_at=EARLY)
    erp = replace(SYNCED, subject="ERP", modified_at=LATE)
    d = from_outlook(outlook, lnk=SYNCED_LINK, erp=erp)
    assert (d.action, d.rule, d.winner) == (Action.CONFLICT, "R18", Direction.ERP_TO_OUTLOOK)
    assert d.fingerprint == fingerprint(erp)
    assert "subject" in d.reason and "loses" in d.reason


@pytest.mark.parametrize(
    ("policy", "action", "winner"),
    [
        (ConflictPolicy.ERP_WINS, Action.CONFLICT, Direction.ERP_TO_OUTLOOK),
        (ConflictPolicy.OUTLOOK_WINS, Action.UPDATE, Direction.OUTLOOK_TO_ERP),
    ],
)
def test_user_policy_overrides_last_modified_R18(policy: ConflictPolicy, action: Action, winner: Direction) -> None:
    outlook = replace(SYNCED, subject="Outlook", modified_at=LATE)
    erp = replace(SYNCED, subject="ERP", modified_at=LATE + timedelta(hours=1))
    for o, e in ((outlook, erp), (replace(outlook, modified_at=LATE + timedelta(days=1)), erp)):
        d = from_outlook(o, lnk=SYNCED_LINK, erp=e, s=settings(conflict_policy=policy))
        assert (d.action, d.winner) == (action, winner)


def test_conflict_tie_goes_to_the_erp_on_both_sides_R18() -> None:
    outlook = replace(SYNCED, subject="Outlook", modified_at=LATE)
    erp = replace(SYNCED, subject="ERP", modified_at=LATE)
    assert from_outlook(outlook, lnk=SYNCED_LINK, erp=erp).winner is Direction.ERP_TO_OUTLOOK
    assert from_erp(erp, lnk=SYNCED_LINK, graph=outlook).winner is Direction.ERP_TO_OUTLOOK


def test_both_sides_resolve_a_conflict_the_same_way_R18() -> None:
    outlook = replace(SYNCED, subject="Outlook", modified_at=LATE)
    erp = replace(SYNCED, subject="ERP", modified_at=EARLY)
    a = from_outlook(outlook, lnk=SYNCED_LINK, erp=erp)
    b = from_erp(erp, lnk=SYNCED_LINK, graph=outlook)
    assert a.winner is b.winner is Direction.OUTLOOK_TO_ERP
    assert (a.action, b.action) == (Action.UPDATE, Action.CONFLICT)
    assert a.fingerprint == b.fingerprint == fingerprint(outlook)


def test_winner_of_unknown_times_goes_to_the_known_one_R18() -> None:
    assert winner_of(ConflictPolicy.LAST_MODIFIED, LATE, None) is Direction.OUTLOOK_TO_ERP
    assert winner_of(ConflictPolicy.LAST_MODIFIED, None, LATE) is Direction.ERP_TO_OUTLOOK
    assert winner_of(ConflictPolicy.LAST_MODIFIED, None, None) is Direction.ERP_TO_OUTLOOK


def test_both_changed_to_the_same_state_is_a_noop_that_refreshes_the_link_R22() -> None:
    same = replace(SYNCED, subject="Agreed")
    d = from_outlook(same, lnk=SYNCED_LINK, erp=same)
    assert (d.action, d.relink, d.fingerprint) == (Action.NOOP, True, fingerprint(same))


def test_lost_link_refound_by_erp_id_and_equal_is_relinked_R21() -> None:
    d = from_outlook(replace(SYNCED, erp_id="42"), erp=SYNCED)
    assert (d.action, d.rule, d.relink) == (Action.NOOP, "R21", True)


def test_lost_link_refound_with_differences_resolves_by_policy_without_duplicate_R21_R18() -> None:
    outlook = replace(SYNCED, subject="Outlook", modified_at=LATE)
    d = from_outlook(outlook, erp=replace(SYNCED, modified_at=EARLY))
    assert (d.action, d.relink, d.winner) == (Action.UPDATE, True, Direction.OUTLOOK_TO_ERP)
    assert d.action is not Action.CREATE


def test_outlook_change_of_an_item_deleted_in_erp_lets_the_deletion_win_R19() -> None:
    d = from_outlook(replace(SYNCED, subject="edited"), lnk=SYNCED_LINK, erp=None)
    assert (d.action, d.rule, d.winner) == (Action.CONFLICT, "R19", Direction.ERP_TO_OUTLOOK)


def test_outlook_wins_policy_recreates_an_item_deleted_in_erp_R18() -> None:
    s = settings(conflict_policy=ConflictPolicy.OUTLOOK_WINS)
    d = from_outlook(replace(SYNCED, subject="edited"), lnk=SYNCED_LINK, erp=None, s=s)
    assert (d.action, d.relink, d.winner) == (Action.CREATE, True, Direction.OUTLOOK_TO_ERP)


def test_outlook_edit_of_a_reassigned_activity_unlinks_R13_R32() -> None:
    d = from_outlook(replace(SYNCED, subject="x"), lnk=SYNCED_LINK, erp=replace(SYNCED, representative="R2"))
    assert (d.action, d.rule) == (Action.UNLINK, "R13")


def test_erp_winning_a_conflict_over_a_meeting_with_attendees_is_not_written_back_R31_R18() -> None:
    # Both sides changed, the ERP later: its version would be written back to Outlook — but a new
    # time on a meeting with attendees mails them, so R31 outranks R18.
    outlook = replace(SYNCED, location="Outlook room", modified_at=EARLY, mails_attendees=True)
    erp = replace(
        SYNCED, start=SYNCED.start + timedelta(hours=1), end=SYNCED.end + timedelta(hours=1), modified_at=LATE
    )  # type: ignore[operator]
    d = from_outlook(outlook, lnk=SYNCED_LINK, erp=erp)
    assert (d.action, d.rule, d.winner) == (Action.SKIP, "R31", Direction.ERP_TO_OUTLOOK)
    # Only quiet fields differ (the partner): written quietly.
    erp = replace(SYNCED, partner_code="UMBRELLA", modified_at=LATE)
    d = from_outlook(replace(outlook, location=SYNCED.location, partner_code="OTHER"), lnk=SYNCED_LINK, erp=erp)
    assert (d.action, d.quiet, d.winner) == (Action.CONFLICT, True, Direction.ERP_TO_OUTLOOK)


def test_unchanged_outlook_item_of_a_reassigned_activity_keeps_its_link_for_the_move_R32() -> None:
    # The late echo of our own write must not unlink: the ERP change then moves the mirror (R32).
    d = from_outlook(SYNCED, lnk=SYNCED_LINK, erp=replace(SYNCED, representative="R2"))
    assert (d.action, d.rule) == (Action.NOOP, "R32")
    moved = from_erp(replace(SYNCED, representative="R2"), lnk=SYNCED_LINK, graph=SYNCED)
    assert (moved.action, moved.rule) == (Action.DELETE, "R32")


# ---------------------------------------------------------------- Outlook removals


def test_removed_in_outlook_never_synced_is_a_noop_R20() -> None:
    assert from_outlook(None).action is Action.NOOP


@pytest.mark.parametrize(("make", "kind"), [(meeting, Kind.EVENT), (task, Kind.TASK), (call, Kind.CALL)])
def test_activity_removed_in_outlook_is_deleted_in_erp_R20(make, kind) -> None:  # type: ignore[no-untyped-def]
    item = make()
    d = from_outlook(None, kind=kind, lnk=link(kind, fingerprint(item)), erp=item)
    assert (d.action, d.rule, d.fingerprint) == (Action.DELETE, "R20", None)


def test_contact_removed_in_outlook_only_loses_the_assignment_R20() -> None:
    c = contact()
    d = from_outlook(None, kind=Kind.CONTACT, lnk=link(Kind.CONTACT, fingerprint(c)), erp=c)
    assert (d.action, d.rule) == (Action.REMOVE_ASSIGNMENT, "R20")


def test_removed_in_outlook_already_gone_in_erp_unlinks_R20() -> None:
    assert from_outlook(None, lnk=SYNCED_LINK, erp=None).action is Action.UNLINK


def test_removal_while_switched_off_never_deletes_R32() -> None:
    for s in (settings(activities_outlook_to_erp=False), settings(sync_meetings=False), settings(active=False)):
        d = from_outlook(None, lnk=SYNCED_LINK, erp=SYNCED, s=s)
        assert (d.action, d.rule) == (Action.UNLINK, "R16")
    d = from_outlook(
        None, kind=Kind.CONTACT, lnk=link(Kind.CONTACT, "x"), erp=contact(), s=settings(contacts_outlook_to_erp=False)
    )
    assert d.action is Action.UNLINK


def test_removal_of_the_old_mirror_of_a_reassigned_activity_keeps_the_erp_item_R32() -> None:
    d = from_outlook(None, lnk=SYNCED_LINK, erp=replace(SYNCED, representative="R2"))
    assert (d.action, d.rule) == (Action.UNLINK, "R13")


def test_removal_after_erp_change_under_erp_wins_keeps_the_erp_item_R18() -> None:
    s = settings(conflict_policy=ConflictPolicy.ERP_WINS)
    erp = replace(SYNCED, subject="changed in ERP")
    d = from_outlook(None, lnk=SYNCED_LINK, erp=erp, s=s)
    assert (d.action, d.winner, d.fingerprint) == (Action.CONFLICT, Direction.ERP_TO_OUTLOOK, fingerprint(erp))
    # Without that policy the removal is the latest change and deletes.
    assert from_outlook(None, lnk=SYNCED_LINK, erp=erp).action is Action.DELETE


# ---------------------------------------------------------------- ERP → Outlook


def test_new_erp_meeting_is_created_in_outlook_R16() -> None:
    d = from_erp(SYNCED)
    assert d.action is Action.CREATE and d.fingerprint == fingerprint(SYNCED) and d.rule == "R11"
    assert from_erp(replace(SYNCED, partner_code=None)).rule is None


def test_erp_activity_of_another_owner_is_not_created_R13() -> None:
    d = from_erp(replace(SYNCED, representative="R2"))
    assert (d.action, d.rule) == (Action.SKIP, "R13")


def test_reassigned_activity_moves_out_of_the_old_mailbox_R32() -> None:
    d = from_erp(replace(SYNCED, representative="R2"), lnk=SYNCED_LINK, graph=SYNCED)
    assert (d.action, d.rule) == (Action.DELETE, "R32")
    assert "R2" in d.reason


def test_reassigned_activity_already_gone_from_old_mailbox_unlinks_R32() -> None:
    d = from_erp(replace(SYNCED, representative="R2"), lnk=SYNCED_LINK, graph=None)
    assert (d.action, d.rule) == (Action.UNLINK, "R32")


def test_reassigned_meeting_with_attendees_is_unlinked_not_cancelled_R31_R32() -> None:
    d = from_erp(replace(SYNCED, representative="R2"), lnk=SYNCED_LINK, graph=replace(SYNCED, mails_attendees=True))
    assert (d.action, d.rule) == (Action.UNLINK, "R31")


def test_disabled_user_is_unlinked_not_deleted_R16_R32() -> None:
    d = from_erp(replace(SYNCED, subject="x"), lnk=SYNCED_LINK, graph=SYNCED, s=settings(sync_enabled=False))
    assert (d.action, d.rule) == (Action.UNLINK, "R16")


def test_erp_to_outlook_switch_off_R16() -> None:
    s = settings(activities_erp_to_outlook=False)
    assert from_erp(SYNCED, s=s).action is Action.SKIP
    # Outlook → ERP still runs on the link: an ERP edit is skipped, the link kept.
    assert from_erp(replace(SYNCED, subject="x"), lnk=SYNCED_LINK, graph=SYNCED, s=s).action is Action.SKIP
    s = settings(activities_erp_to_outlook=False, activities_outlook_to_erp=False)
    assert from_erp(replace(SYNCED, subject="x"), lnk=SYNCED_LINK, graph=SYNCED, s=s).action is Action.UNLINK


def test_erp_contact_stays_in_the_erp_by_default_R17() -> None:
    d = from_erp(contact(), kind=Kind.CONTACT)
    assert (d.action, d.rule) == (Action.SKIP, "R17")
    d = from_erp(contact(), kind=Kind.CONTACT, s=settings(contacts_two_way=True))
    assert d.action is Action.CREATE


def test_erp_echo_of_a_sync_write_is_a_noop_R22() -> None:
    echoed = replace(SYNCED, erp_version=7, modified_at=LATE, public=True, contact_id=5)
    assert from_erp(echoed, lnk=SYNCED_LINK, graph=SYNCED).action is Action.NOOP


def test_erp_change_updates_outlook() -> None:
    changed = replace(SYNCED, location="Paris", modified_at=LATE)
    d = from_erp(changed, lnk=SYNCED_LINK, graph=SYNCED)
    assert (d.action, d.fingerprint, d.changed, d.quiet) == (Action.UPDATE, fingerprint(changed), ("location",), False)


def test_both_changed_later_erp_change_wins_in_outlook_R18() -> None:
    erp = replace(SYNCED, subject="ERP", modified_at=LATE)
    outlook = replace(SYNCED, subject="Outlook", modified_at=EARLY)
    d = from_erp(erp, lnk=SYNCED_LINK, graph=outlook)
    assert (d.action, d.winner) == (Action.UPDATE, Direction.ERP_TO_OUTLOOK)


def test_erp_change_of_an_item_removed_in_outlook_lets_the_removal_win_R20() -> None:
    d = from_erp(replace(SYNCED, subject="x"), lnk=SYNCED_LINK, graph=None)
    assert (d.action, d.rule, d.winner) == (Action.CONFLICT, "R20", Direction.OUTLOOK_TO_ERP)


def test_erp_wins_policy_recreates_an_item_removed_in_outlook_R18() -> None:
    s = settings(conflict_policy=ConflictPolicy.ERP_WINS)
    d = from_erp(replace(SYNCED, subject="x"), lnk=SYNCED_LINK, graph=None, s=s)
    assert (d.action, d.relink, d.winner) == (Action.CREATE, True, Direction.ERP_TO_OUTLOOK)


def test_erp_lost_link_refound_by_erp_id_R21() -> None:
    assert from_erp(SYNCED, graph=SYNCED).action is Action.NOOP
    d = from_erp(replace(SYNCED, subject="x", modified_at=LATE), graph=replace(SYNCED, modified_at=EARLY))
    assert (d.action, d.relink) == (Action.UPDATE, True)


def test_erp_item_outside_window_is_unlinked_R34() -> None:
    old = replace(SYNCED, start=NOW - timedelta(days=100), end=NOW - timedelta(days=100, hours=-1))
    d = from_erp(old, lnk=SYNCED_LINK, graph=SYNCED)
    assert (d.action, d.rule) == (Action.UNLINK, "R34")


# ---------------------------------------------------------------- R31 meetings with attendees


def test_erp_update_of_a_meeting_with_attendees_is_skipped_not_mailed_R31() -> None:
    graph = replace(SYNCED, mails_attendees=True)
    d = from_erp(
        replace(SYNCED, start=NOW + timedelta(days=3), end=NOW + timedelta(days=3, hours=1)),
        lnk=SYNCED_LINK,
        graph=graph,
    )
    assert (d.action, d.rule) == (Action.SKIP, "R31")
    assert "times" in d.reason


def test_erp_chrono_or_partner_change_on_a_meeting_with_attendees_is_written_quietly_R31() -> None:
    graph = replace(SYNCED, mails_attendees=True)
    d = from_erp(replace(SYNCED, chrono="MTG0099", partner_code="BETA"), lnk=SYNCED_LINK, graph=graph)
    assert (d.action, d.quiet) == (Action.UPDATE, True)
    assert set(d.changed) == {"chrono", "partner_code"}


def test_erp_deletion_of_a_meeting_with_attendees_unlinks_instead_of_cancelling_R31() -> None:
    d = from_erp(None, lnk=SYNCED_LINK, graph=replace(SYNCED, mails_attendees=True))
    assert (d.action, d.rule) == (Action.UNLINK, "R31")


def test_attendee_guard_does_not_touch_tasks_R31() -> None:
    t = task()
    d = from_erp(
        replace(t, subject="x"),
        kind=Kind.TASK,
        lnk=link(Kind.TASK, fingerprint(t)),
        graph=replace(t, mails_attendees=True),
    )
    assert d.action is Action.UPDATE


# ---------------------------------------------------------------- ERP deletions


def test_erp_deletion_never_synced_is_a_noop_R19() -> None:
    assert from_erp(None).action is Action.NOOP


@pytest.mark.parametrize(("make", "kind"), [(meeting, Kind.EVENT), (task, Kind.TASK), (call, Kind.CALL)])
def test_erp_deletion_deletes_in_outlook_R19(make, kind) -> None:  # type: ignore[no-untyped-def]
    item = make()
    d = from_erp(None, kind=kind, lnk=link(kind, fingerprint(item)), graph=item)
    assert (d.action, d.rule) == (Action.DELETE, "R19")


def test_erp_contact_deletion_deletes_in_outlook_only_when_two_way_R17_R19() -> None:
    c = contact()
    lnk = link(Kind.CONTACT, fingerprint(c))
    assert from_erp(None, kind=Kind.CONTACT, lnk=lnk, graph=c).action is Action.UNLINK
    s = settings(contacts_two_way=True)
    assert from_erp(None, kind=Kind.CONTACT, lnk=lnk, graph=c, s=s).action is Action.DELETE


def test_erp_deletion_already_gone_in_outlook_unlinks_R19() -> None:
    assert from_erp(None, lnk=SYNCED_LINK, graph=None).action is Action.UNLINK


def test_erp_deletion_while_switched_off_never_deletes_R32() -> None:
    d = from_erp(None, lnk=SYNCED_LINK, graph=SYNCED, s=settings(sync_meetings=False))
    assert (d.action, d.rule) == (Action.UNLINK, "R16")


def test_erp_deletion_after_outlook_change_under_outlook_wins_keeps_it_R18() -> None:
    s = settings(conflict_policy=ConflictPolicy.OUTLOOK_WINS)
    graph = replace(SYNCED, subject="edited in Outlook")
    d = from_erp(None, lnk=SYNCED_LINK, graph=graph, s=s)
    assert (d.action, d.winner, d.fingerprint) == (Action.CONFLICT, Direction.OUTLOOK_TO_ERP, fingerprint(graph))
    assert from_erp(None, lnk=SYNCED_LINK, graph=graph).action is Action.DELETE


# ---------------------------------------------------------------- helpers


def test_changed_fields_names_the_drift_R26() -> None:
    assert changed_fields(SYNCED, replace(SYNCED, subject="x", contact=Person("Z", "z@x.com"))) == (
        "contact",
        "subject",
    )
    assert changed_fields(SYNCED, None) == ()


def test_erp_echo_with_the_outlook_mirror_gone_lets_the_removal_win_R20() -> None:
    # Never re-create what the user just removed in Outlook, even under erp_wins, when the ERP didn't change.
    for policy in ConflictPolicy:
        d = from_erp(SYNCED, lnk=SYNCED_LINK, graph=None, s=settings(conflict_policy=policy))
        assert (d.action, d.rule, d.winner) == (Action.CONFLICT, "R20", Direction.OUTLOOK_TO_ERP)


def test_outlook_echo_with_the_erp_mirror_deleted_lets_the_deletion_win_R19() -> None:
    for policy in ConflictPolicy:
        d = from_outlook(SYNCED, lnk=SYNCED_LINK, erp=None, s=settings(conflict_policy=policy))
        assert (d.action, d.rule, d.winner) == (Action.CONFLICT, "R19", Direction.ERP_TO_OUTLOOK)
