"""The embedded ERP's rules, through its unit of work, on SQLite and PostgreSQL (no HTTP, no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from sqlmodel import col, select

from erp_connector.errors import (
    AlreadyExists,
    InvalidData,
    Overlap,
    SalesRoleRequired,
    UnknownPartner,
    VersionConflict,
)
from erp_connector.models import Origin, OutboxMessage
from erp_connector.schemas import (
    ActivityCreate,
    ActivityUpdate,
    ContactCreate,
    ContactUpdate,
    PartnerCreate,
    RepresentativeCreate,
    RepresentativeUpdate,
)
from erp_connector.store import ErpStore
from erp_connector.unit_of_work import UnitOfWork, WriteRequest

T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


async def write(uow: UnitOfWork, fn: Callable[[ErpStore], Awaitable[BaseModel]], **request: Any) -> dict[str, Any]:
    return (await uow.write(WriteRequest(**request), fn)).body


def meeting(start: datetime = T0, minutes: int = 60, rep: str = "REP01", **extra: Any) -> ActivityCreate:
    return ActivityCreate(
        kind="meeting",
        subject="Visit",
        start=start,
        end=start + timedelta(minutes=minutes),
        representative=rep,
        **extra,
    )


async def outbox(uow: UnitOfWork) -> list[OutboxMessage]:
    async with uow.db.read() as session:
        return list((await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all())


@pytest.fixture
async def seeded(uow: UnitOfWork) -> UnitOfWork:
    for code, sales in (("REP01", True), ("REP02", True), ("REP03", False)):
        rep = RepresentativeCreate(code=code, name=code, email=f"{code.lower()}@contoso.example", sales_role=sales)
        await write(uow, lambda erp, rep=rep: erp.create_representative(rep))
    partners = [
        PartnerCreate(code="SUPP", name="S", type="supplier", domains=["both.example"]),
        PartnerCreate(code="PROS", name="P", type="prospect", domains=["both.example", "pros.example"]),
        PartnerCreate(code="CUST", name="C", type="customer", domains=["cust.example", "all.example"]),
        PartnerCreate(code="SUPP2", name="S2", type="supplier", domains=["all.example"]),
    ]
    for partner in partners:
        await write(uow, lambda erp, p=partner: erp.create_partner(p))
    return uow


async def test_chronos_are_numbered_per_kind_with_their_prefix_R03(seeded: UnitOfWork) -> None:
    chronos = []
    for kind in ("meeting", "task", "call", "task"):
        data = ActivityCreate(kind=kind, start=T0 + timedelta(days=len(chronos)), representative="REP01")
        if kind == "meeting":
            data = meeting()
        chronos.append((await write(seeded, lambda erp, d=data: erp.create_activity(d)))["chrono"])
    assert chronos == ["MTG000001", "TSK000001", "CLL000001", "TSK000002"]
    wrong = ActivityCreate(kind="call", chrono="TSK000099", representative="REP01")
    with pytest.raises(InvalidData, match="starts with CLL"):
        await write(seeded, lambda erp: erp.create_activity(wrong))
    imported = ActivityCreate(kind="task", chrono="TSK000003", representative="REP01")
    await write(seeded, lambda erp: erp.create_activity(imported))
    after = await write(seeded, lambda erp: erp.create_activity(ActivityCreate(kind="task", representative="REP01")))
    assert after["chrono"] == "TSK000004", "numbering skips a chrono an import already took"
    with pytest.raises(AlreadyExists):
        await write(seeded, lambda erp: erp.create_activity(imported))


async def test_an_imported_chrono_of_the_numbering_moves_its_counter_past_it_R03(seeded: UnitOfWork) -> None:
    """Numbering reads no activity to skip an imported chrono: the import moved the counter already.
    A chrono outside the counter's numbering (other width, letters) leaves the counter alone."""
    for chrono in ("TSK000500", "TSK0000900", "TSK12", "TSK00012A"):
        data = ActivityCreate(kind="task", chrono=chrono, representative="REP01")
        await write(seeded, lambda erp, d=data: erp.create_activity(d))
    after = await write(seeded, lambda erp: erp.create_activity(ActivityCreate(kind="task", representative="REP01")))
    assert after["chrono"] == "TSK000501"
    call = await write(seeded, lambda erp: erp.create_activity(ActivityCreate(kind="call", representative="REP01")))
    assert call["chrono"] == "CLL000001", "each kind keeps its own counter"


async def test_overlapping_meeting_is_refused_R15(seeded: UnitOfWork) -> None:
    await write(seeded, lambda erp: erp.create_activity(meeting()))
    with pytest.raises(Overlap, match="MTG000001"):
        await write(seeded, lambda erp: erp.create_activity(meeting(T0 + timedelta(minutes=59))))
    with pytest.raises(Overlap):
        await write(seeded, lambda erp: erp.create_activity(meeting(T0 - timedelta(minutes=30), minutes=300)))


async def test_back_to_back_meetings_and_other_owners_do_not_overlap_R15(seeded: UnitOfWork) -> None:
    await write(seeded, lambda erp: erp.create_activity(meeting()))
    await write(seeded, lambda erp: erp.create_activity(meeting(T0 + timedelta(hours=1))))
    await write(seeded, lambda erp: erp.create_activity(meeting(T0, rep="REP02")))
    all_day = meeting(datetime(2030, 1, 7, tzinfo=UTC), minutes=24 * 60, all_day=True)
    await write(seeded, lambda erp: erp.create_activity(all_day))
    task = ActivityCreate(kind="task", start=T0, due=T0 + timedelta(hours=1), representative="REP01")
    await write(seeded, lambda erp: erp.create_activity(task))


async def test_moving_a_meeting_onto_another_is_refused_R15(seeded: UnitOfWork) -> None:
    await write(seeded, lambda erp: erp.create_activity(meeting()))
    later = await write(seeded, lambda erp: erp.create_activity(meeting(T0 + timedelta(hours=3))))
    move = ActivityUpdate(start=T0 + timedelta(minutes=30), end=T0 + timedelta(minutes=90))
    with pytest.raises(Overlap):
        await write(seeded, lambda erp: erp.update_activity(later["id"], move))
    # Moving a meeting within its own slot is no overlap with itself.
    await write(seeded, lambda erp: erp.update_activity(later["id"], ActivityUpdate(end=T0 + timedelta(hours=3.5))))


async def test_overlaps_are_accepted_when_refusal_is_off_R15(seeded: UnitOfWork) -> None:
    lenient = UnitOfWork(seeded.db, refuse_overlaps=False)
    await write(lenient, lambda erp: erp.create_activity(meeting()))
    await write(lenient, lambda erp: erp.create_activity(meeting()))


async def test_concurrent_overlapping_meetings_let_exactly_one_in_R15(seeded: UnitOfWork) -> None:
    async def attempt(n: int) -> str:
        try:
            await write(seeded, lambda erp: erp.create_activity(meeting(T0 + timedelta(minutes=n))))
            return "created"
        except Overlap:
            return "refused"

    outcomes = await asyncio.gather(*(attempt(n) for n in range(8)))
    assert sorted(outcomes) == ["created"] + ["refused"] * 7


async def test_unknown_partner_code_is_refused_R11(seeded: UnitOfWork) -> None:
    with pytest.raises(UnknownPartner, match="#NOPE#"):
        await write(seeded, lambda erp: erp.create_activity(meeting(partner_code="NOPE")))
    with pytest.raises(UnknownPartner):
        await write(seeded, lambda erp: erp.create_contact(ContactCreate(surname="X", partner_code="NOPE")))
    created = await write(seeded, lambda erp: erp.create_contact(ContactCreate(surname="X", partner_code="CUST")))
    assert created["partner_code"] == "CUST" and created["group"] is None


async def test_records_stay_editable_after_their_partner_is_deleted_R11(seeded: UnitOfWork) -> None:
    activity = await write(seeded, lambda erp: erp.create_activity(meeting(partner_code="CUST")))
    contact = await write(seeded, lambda erp: erp.create_contact(ContactCreate(surname="X", partner_code="CUST")))
    await write(seeded, lambda erp: erp.delete_partner("CUST"))
    edited = await write(seeded, lambda erp: erp.update_activity(activity["id"], ActivityUpdate(subject="Still here")))
    assert edited["partner_code"] == "CUST"
    renamed = await write(seeded, lambda erp: erp.update_contact(contact["id"], ContactUpdate(surname="Y")))
    assert renamed["partner_code"] == "CUST"
    same = await write(seeded, lambda erp: erp.update_activity(activity["id"], ActivityUpdate(partner_code="CUST")))
    assert same["version"] == edited["version"], "resending the same partner is no change"
    await write(seeded, lambda erp: erp.delete_partner("SUPP2"))
    with pytest.raises(UnknownPartner):
        await write(seeded, lambda erp: erp.update_activity(activity["id"], ActivityUpdate(partner_code="SUPP2")))


async def test_domain_resolves_to_customer_then_prospect_then_supplier_R10(seeded: UnitOfWork) -> None:
    resolved = {
        domain: (await seeded.read(lambda erp, d=domain: erp.resolve_partner(d))).code
        for domain in ("both.example", "all.example", "cust.example", "PROS.example")
    }
    assert resolved == {"both.example": "PROS", "all.example": "CUST", "cust.example": "CUST", "PROS.example": "PROS"}


async def test_contact_without_partner_goes_to_its_domain_partner_else_exchange_R10(seeded: UnitOfWork) -> None:
    linked = ContactCreate(given_name="A", surname="B", emails=["a@gmail.example", "a@both.example"])
    stray = ContactCreate(given_name="C", surname="D", emails=["c@gmail.example"])
    assert (await write(seeded, lambda erp: erp.create_contact(linked)))["partner_code"] == "PROS"
    placed = await write(seeded, lambda erp: erp.create_contact(stray))
    assert placed["partner_code"] is None and placed["group"] == "EXCHANGE"


async def test_removing_an_assignment_keeps_the_contact_and_tells_that_user_R20(seeded: UnitOfWork) -> None:
    data = ContactCreate(surname="Doe", emails=["d@cust.example"], representatives=["REP01", "REP02"])
    contact = await write(seeded, lambda erp: erp.create_contact(data))
    before = len(await outbox(seeded))
    after = await write(seeded, lambda erp: erp.remove_assignment(contact["id"], "REP01"), origin=Origin.OUTLOOK)
    assert after["representatives"] == ["REP02"] and after["deleted"] is False
    [event] = (await outbox(seeded))[before:]
    assert event.user == "rep01@contoso.example"
    assert event.payload["previous_representative"] == "REP01" and event.payload["representative"] is None
    assert event.payload["origin"] == "outlook"
    again = await write(seeded, lambda erp: erp.remove_assignment(contact["id"], "REP01"))
    assert again["version"] == after["version"], "removing an absent assignment changes nothing"


async def test_representative_without_sales_role_cannot_be_enabled_R13(seeded: UnitOfWork) -> None:
    with pytest.raises(SalesRoleRequired, match="REP03"):
        await write(seeded, lambda erp: erp.update_representative("REP03", RepresentativeUpdate(sync_enabled=True)))
    enabled = await write(
        seeded, lambda erp: erp.update_representative("REP01", RepresentativeUpdate(sync_enabled=True))
    )
    assert enabled["sync_enabled"] is True
    [message] = [m for m in await outbox(seeded) if m.type == "user.changed" and m.payload["enabled"]]
    assert message.user == "rep01@contoso.example" and message.payload["switches"]["sync_meetings"] is True


async def test_activity_imported_from_outlook_is_public_R12(seeded: UnitOfWork) -> None:
    data = ActivityCreate(kind="task", subject="From Outlook", representative="REP01", public=False)
    created = await write(seeded, lambda erp: erp.create_activity(data), origin=Origin.OUTLOOK)
    assert created["public"] is True and created["origin"] == "outlook"
    listed = await seeded.read(lambda erp: erp.list_activities(origin=Origin.OUTLOOK))
    assert [a.id for a in listed.items] == [created["id"]]


async def test_multi_day_meeting_is_accepted_and_all_day_keeps_midnight_dates_R07(seeded: UnitOfWork) -> None:
    three_days = meeting(minutes=3 * 24 * 60)
    assert (await write(seeded, lambda erp: erp.create_activity(three_days)))["end"] == "2030-01-10T09:00:00Z"
    fair = meeting(datetime(2030, 2, 1, tzinfo=UTC), minutes=2 * 24 * 60, all_day=True)
    created = await write(seeded, lambda erp: erp.create_activity(fair))
    assert (created["start"], created["end"]) == ("2030-02-01T00:00:00Z", "2030-02-03T00:00:00Z")
    with pytest.raises(InvalidData, match="00:00:00Z"):
        await write(seeded, lambda erp: erp.create_activity(meeting(all_day=True)))


async def test_task_due_mirrors_into_end_and_may_precede_the_start(seeded: UnitOfWork) -> None:
    data = ActivityCreate(kind="task", start=T0 + timedelta(days=2), due=T0, representative="REP01")
    created = await write(seeded, lambda erp: erp.create_activity(data))
    assert created["end"] == created["due"] == "2030-01-07T09:00:00Z"
    moved = ActivityUpdate(due=T0 + timedelta(days=3))
    updated = await write(seeded, lambda erp: erp.update_activity(created["id"], moved))
    assert updated["end"] == updated["due"] == "2030-01-10T09:00:00Z"


async def test_write_and_its_outbox_row_commit_together(seeded: UnitOfWork) -> None:
    before = len(await outbox(seeded))
    created = await write(seeded, lambda erp: erp.create_activity(meeting()))
    [row] = (await outbox(seeded))[before:]
    assert row.type == "erp.changed" and row.kind == "event" and row.payload["erp_id"] == str(created["id"])
    assert row.sent_at is None and len(row.message_id) == 36

    async def fails_after_writing(erp: ErpStore) -> BaseModel:
        await erp.create_activity(meeting(T0 + timedelta(days=1)))
        raise InvalidData("refused after the write")

    with pytest.raises(InvalidData):
        await seeded.write(WriteRequest(), fails_after_writing)
    assert len(await outbox(seeded)) == before + 1, "a rolled-back write leaves no outbox row"
    assert (await seeded.read(lambda erp: erp.list_activities())).total == 1


async def test_unchanged_write_bumps_no_version_and_publishes_nothing_R22(seeded: UnitOfWork) -> None:
    created = await write(seeded, lambda erp: erp.create_activity(meeting()))
    before = len(await outbox(seeded))
    same = await write(seeded, lambda erp: erp.update_activity(created["id"], ActivityUpdate(subject="Visit")))
    assert same["version"] == 1 and len(await outbox(seeded)) == before


async def test_stale_version_is_refused_with_the_current_record(seeded: UnitOfWork) -> None:
    created = await write(seeded, lambda erp: erp.create_contact(ContactCreate(surname="Doe")))
    await write(seeded, lambda erp: erp.update_contact(created["id"], ContactUpdate(surname="Do"), expected_version=1))
    with pytest.raises(VersionConflict) as refused:
        await write(
            seeded, lambda erp: erp.update_contact(created["id"], ContactUpdate(surname="D"), expected_version=1)
        )
    assert refused.value.extra["current"]["surname"] == "Do" and refused.value.extra["current"]["version"] == 2


async def test_deleted_contact_is_a_tombstone_and_each_owner_hears_of_it_R19(seeded: UnitOfWork) -> None:
    data = ContactCreate(surname="Doe", representatives=["REP01", "REP02"])
    contact = await write(seeded, lambda erp: erp.create_contact(data))
    before = len(await outbox(seeded))
    await write(seeded, lambda erp: erp.delete_contact(contact["id"]))
    tombstone = await seeded.read(lambda erp: erp.get_contact(contact["id"]))
    assert tombstone.deleted is True and tombstone.representatives == ["REP01", "REP02"]
    events = (await outbox(seeded))[before:]
    assert sorted(e.user for e in events) == ["rep01@contoso.example", "rep02@contoso.example"]
    assert {e.payload["change"] for e in events} == {"deleted"}


async def test_idempotent_write_runs_once_and_a_reused_key_is_refused(seeded: UnitOfWork) -> None:
    data = ContactCreate(surname="Once")
    first = await seeded.write(WriteRequest("key-1", "fp-1"), lambda erp: erp.create_contact(data), status_code=201)
    again = await seeded.write(WriteRequest("key-1", "fp-1"), lambda erp: erp.create_contact(data), status_code=201)
    assert again.replayed and again.body == first.body and again.status_code == 201
    assert (await seeded.read(lambda erp: erp.list_contacts())).total == 1
    with pytest.raises(InvalidData, match="Idempotency-Key"):
        await seeded.write(WriteRequest("key-1", "fp-2"), lambda erp: erp.create_contact(data))
