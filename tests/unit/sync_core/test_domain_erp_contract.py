"""The ERP bodies sync-core builds are what erp-connector's API accepts (contracts.md), without I/O.

Validated against erp-connector's own request schemas: a drift on either side fails here first.
"""

from __future__ import annotations

from datetime import date

import pytest
from domain_builders import all_day, call, contact, meeting, task
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_core.domain.mapping.erp import activity_to_erp, contact_to_erp
from sync_core.domain.model import Activity

schemas = pytest.importorskip("erp_connector.schemas")

ACTIVITIES = [
    meeting(),
    meeting(location=None, notes=None, partner_code=None, contact=None, persons=(), chrono=None),
    all_day(date(2024, 5, 1), date(2024, 5, 3)),
    task(),
    task(start=None, due=None, done=True),
    call(),
]


@pytest.mark.parametrize("a", ACTIVITIES, ids=lambda a: f"{a.kind.value}-{a.all_day}")
def test_activity_create_body_is_accepted_by_the_erp_R12(a: Activity) -> None:
    body = activity_to_erp(a, representative="R1", contact_id=5, partner_code=a.partner_code, create=True)
    parsed = schemas.ActivityCreate.model_validate(body)
    assert parsed.public is True and parsed.origin.value == "outlook"


@pytest.mark.parametrize("a", ACTIVITIES, ids=lambda a: f"{a.kind.value}-{a.all_day}")
def test_activity_update_body_is_accepted_by_the_erp(a: Activity) -> None:
    body = activity_to_erp(a, representative="R1", contact_id=None, partner_code=None, create=False)
    schemas.ActivityUpdate.model_validate(body)


def test_all_day_body_satisfies_the_erp_midnight_rule_R07() -> None:
    body = activity_to_erp(all_day(date(2024, 5, 1), date(2024, 5, 1)), representative="R1", contact_id=None,
                           partner_code=None)  # fmt: skip
    parsed = schemas.ActivityCreate.model_validate(body)
    assert parsed.start is not None and parsed.end is not None
    assert (parsed.start.hour, parsed.end.hour) == (0, 0) and parsed.end > parsed.start


@pytest.mark.parametrize("create", [True, False])
def test_contact_bodies_are_accepted_by_the_erp_R04_R10(create: bool) -> None:
    for c in (contact(), contact(partner_code=None, mobile_phone=None, job_title=None, business_phones=())):
        body = contact_to_erp(c, representative="R1", partner_code=c.partner_code, group=None, create=create)
        model = schemas.ContactCreate if create else schemas.ContactUpdate
        model.model_validate(body)


@settings(max_examples=60, deadline=None)
@given(
    subject=st.text(max_size=100),
    minutes=st.none() | st.integers(0, 10**5),
    kind=st.sampled_from(["meeting", "task", "call"]),
    participants=st.lists(st.from_regex(r"[A-Z0-9_-]{1,20}", fullmatch=True), max_size=5),
)
def test_any_mapped_activity_validates_R01_R02(
    subject: str, minutes: int | None, kind: str, participants: list[str]
) -> None:
    base = {"meeting": meeting, "task": task, "call": call}[kind]()
    from dataclasses import replace

    a = replace(base, subject=subject or None, time_spent_minutes=minutes, participants=tuple(participants))
    for create in (True, False):
        body = activity_to_erp(a, representative="R1", contact_id=None, partner_code="ACME", create=create)
        (schemas.ActivityCreate if create else schemas.ActivityUpdate).model_validate(body)
