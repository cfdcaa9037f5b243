"""Carrying one-sided fields over before a write: nothing the other side can't hold is wiped."""

from __future__ import annotations

from dataclasses import replace

from domain_builders import contact, meeting, task

from sync_core.domain.fingerprint import fingerprint
from sync_core.domain.mapping.erp import activity_to_erp, contact_to_erp
from sync_core.domain.merge import for_erp, for_outlook
from sync_core.domain.model import Person

BOB = Person("Bob Buyer", "bob@acme.com")
CARLA = Person("Carla", "carla@acme.com")


def test_outlook_update_keeps_erp_only_fields_R12_R01() -> None:
    current = meeting(erp_id="42", public=False, contact_id=5, participants=("R1", "R2"), erp_version=3)
    incoming = meeting(erp_id=None, public=None, participants=(), chrono=None, representative=None)
    merged = for_erp(incoming, current)
    assert merged.erp_id == "42" and merged.chrono == "MTG0001" and merged.participants == ("R1", "R2")
    assert merged.public is False and merged.contact_id == 5 and merged.representative == "R1"
    assert merged.erp_version == 3
    body = activity_to_erp(merged, representative="R1", contact_id=merged.contact_id, partner_code="ACME")
    assert body["public"] is False  # R12 applies to imports, not to updates of ERP items


def test_new_first_contact_drops_the_old_contact_id_R08() -> None:
    current = meeting(contact=BOB, contact_id=5)
    merged = for_erp(meeting(contact=CARLA, persons=(CARLA,)), current)
    assert merged.contact_id is None


def test_outlook_item_without_erp_mirror_is_unchanged() -> None:
    item = meeting()
    assert for_erp(item, None) is item and for_outlook(item, None) is item


def test_outlook_contact_update_keeps_group_and_other_assignments_R10_R20() -> None:
    merged = for_erp(contact(representatives=()), contact(erp_id="7", group="EXCHANGE", representatives=("R2",)))
    assert merged.group == "EXCHANGE" and merged.erp_id == "7"
    body = contact_to_erp(merged, representative="R1", partner_code=None, group=merged.group)
    assert body["representatives"] == ["R2", "R1"] and body["group"] == "EXCHANGE"


def test_erp_update_keeps_outlook_only_fields_R08_R11() -> None:
    current = meeting(
        graph_id="G",
        persons=(BOB, CARLA),
        categories=("Red",),
        mails_attendees=True,
        series_type="singleInstance",
        graph_change_key="ck",
    )
    incoming = meeting(graph_id=None, persons=(BOB,), categories=())
    merged = for_outlook(incoming, current)
    assert merged.graph_id == "G" and merged.categories == ("Red",) and merged.persons == (BOB, CARLA)
    assert merged.mails_attendees is True and merged.graph_change_key == "ck"
    assert fingerprint(merged) == fingerprint(incoming)


def test_erp_contact_change_replaces_the_recorded_persons_R08() -> None:
    merged = for_outlook(meeting(contact=CARLA, persons=(CARLA,)), meeting(persons=(BOB, CARLA)))
    assert merged.persons == (CARLA,)


def test_erp_task_update_keeps_the_to_do_status_R02() -> None:
    merged = for_outlook(task(done=False), task(outlook_status="inProgress"))
    assert merged.outlook_status == "inProgress"


def test_erp_contact_update_keeps_outlook_company_text_R11() -> None:
    merged = for_outlook(contact(partner_code=None), contact(partner_code=None, company="Acme Corp", graph_id="G"))
    assert merged.company == "Acme Corp" and merged.graph_id == "G"
    assert fingerprint(merged) == fingerprint(contact(partner_code=None))


def test_merges_never_move_the_fingerprint_R22() -> None:
    a, b = meeting(subject="A"), replace(meeting(subject="B"), persons=(BOB, CARLA), public=False)
    assert fingerprint(for_erp(a, b)) == fingerprint(a)
    assert fingerprint(for_outlook(a, b)) == fingerprint(a)
