"""Carry one-sided fields over before a write, so a write never wipes what the other side can't hold.

`for_erp` fills an Outlook item with what only the ERP knows (chrono, participants, public, contact id,
assigned representatives, group); `for_outlook` fills an ERP item with what only Outlook holds (the
user's own categories, further persons to visit, a To Do status, the company text of a contact).
Neither touches a synced field, so fingerprints don't move.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar, overload

from .model import Activity, Contact
from .rules import first_contact

T = TypeVar("T", Activity, Contact)


def _same_person(a: Activity, b: Activity) -> bool:
    pa, pb = first_contact(a), first_contact(b)
    if pa is None or pb is None:
        return pa is pb
    if pa.email and pb.email:
        return pa.email.lower() == pb.email.lower()
    return pa.name.strip().lower() == pb.name.strip().lower()


@overload
def for_erp(incoming: Activity, current: Activity | None) -> Activity: ...
@overload
def for_erp(incoming: Contact, current: Contact | None) -> Contact: ...
def for_erp(incoming: Activity | Contact, current: Activity | Contact | None) -> Activity | Contact:
    """An Outlook item completed with the ERP-only fields of its current ERP mirror."""
    if current is None:
        return incoming
    if isinstance(incoming, Contact):
        assert isinstance(current, Contact)
        return replace(
            incoming,
            erp_id=incoming.erp_id or current.erp_id,
            group=current.group,
            representatives=current.representatives,
            erp_version=current.erp_version,
        )
    assert isinstance(current, Activity)
    return replace(
        incoming,
        erp_id=incoming.erp_id or current.erp_id,
        chrono=incoming.chrono or current.chrono,
        participants=incoming.participants or current.participants,
        public=current.public if incoming.public is None else incoming.public,
        representative=current.representative,
        contact_id=current.contact_id if _same_person(incoming, current) else None,
        erp_version=current.erp_version,
    )


@overload
def for_outlook(incoming: Activity, current: Activity | None) -> Activity: ...
@overload
def for_outlook(incoming: Contact, current: Contact | None) -> Contact: ...
def for_outlook(incoming: Activity | Contact, current: Activity | Contact | None) -> Activity | Contact:
    """An ERP item completed with the Outlook-only fields of its current Outlook mirror."""
    if current is None:
        return incoming
    if isinstance(incoming, Contact):
        assert isinstance(current, Contact)
        return replace(
            incoming,
            graph_id=incoming.graph_id or current.graph_id,
            company=current.company,
            graph_change_key=current.graph_change_key,
        )
    assert isinstance(current, Activity)
    persons = incoming.persons
    if incoming.contact is not None and _same_person(incoming, current):
        # Same first contact: keep the other persons to visit Outlook holds (R08 keeps them there).
        persons = (incoming.contact, *current.persons[1:])
    return replace(
        incoming,
        graph_id=incoming.graph_id or current.graph_id,
        persons=persons,
        categories=current.categories,
        outlook_status=current.outlook_status,
        mails_attendees=current.mails_attendees,
        series_type=current.series_type,
        graph_change_key=current.graph_change_key,
    )
