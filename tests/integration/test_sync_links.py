"""sync-core's links, on SQLite and PostgreSQL: a link is saved with its journal line in one
transaction, upserted on its ERP key (never a second row for one ERP record), written again when it
was dropped meanwhile, and a delta page reads its links and pending creates at once (R21, R25, R20)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlmodel import col, select

from shared import db
from shared.envelope import Kind
from sync_core.db import migrate
from sync_core.models import JournalEntry, Link, PendingCreate
from sync_core.state import State, as_utc, journal_entry, now_utc

USER = "ana@contoso.example"


@pytest.fixture
async def state(database_url: str) -> AsyncIterator[State]:
    migrate(database_url)
    engine = db.create_engine(database_url)
    state = State(db.session_factory(engine))
    try:
        yield state
    finally:
        await state.aclose()
        await engine.dispose()


def _link(erp_id: str, graph_id: str, fingerprint: str = "fp1") -> Link:
    return Link(
        user=USER,
        kind=Kind.EVENT.value,
        collection="event",
        graph_id=graph_id,
        erp_id=erp_id,
        fingerprint=fingerprint,
        synced_at=now_utc(),
    )


async def _rows(state: State, model: type) -> list:  # type: ignore[type-arg]
    async with state.sessions() as s:
        return list((await s.exec(select(model).order_by(col(model.id)))).all())


async def _pending(state: State, graph_id: str) -> PendingCreate:
    entry = PendingCreate(
        user=USER,
        collection="event",
        graph_id=graph_id,
        erp_collection="activities",
        key=f"k-{graph_id}",
        body={"subject": "x"},
        created_at=now_utc(),
    )
    await state.add_pending_create(entry)
    return entry


async def test_a_link_is_upserted_on_its_erp_key_with_its_journal_line_R21_R25(state: State) -> None:
    first = _link("41", "AAA")
    await state.save_link(first, journal_entry(user=USER, outcome="created", erp_id="41", graph_id="AAA"))
    assert first.id is not None

    # A link read earlier (it has an id) is updated by that id.
    first.fingerprint = "fp1b"
    await state.save_link(first)
    assert [(r.id, r.fingerprint) for r in await _rows(state, Link)] == [(first.id, "fp1b")]

    # Another Link object for the same ERP record (no id: e.g. a relink) updates that row, not a second one.
    again = _link("41", "BBB", fingerprint="fp2")
    await state.save_link(again, journal_entry(user=USER, outcome="updated", erp_id="41", graph_id="BBB"))
    rows = await _rows(state, Link)
    assert [(r.id, r.erp_id, r.graph_id, r.fingerprint) for r in rows] == [(first.id, "41", "BBB", "fp2")]
    assert again.id == first.id
    assert [(j.outcome, j.graph_id) for j in await _rows(state, JournalEntry)] == [
        ("created", "AAA"),
        ("updated", "BBB"),
    ]

    # A link read earlier, dropped meanwhile (reconciliation): written again as a new row.
    await state.drop_link(rows[0])
    await state.save_link(again)
    rows = await _rows(state, Link)
    assert [(r.id, r.graph_id) for r in rows] == [(again.id, "BBB")]


async def test_a_saved_link_drops_the_pending_creates_it_settles_in_its_transaction_R20(state: State) -> None:
    settled, other = await _pending(state, "AAA"), await _pending(state, "CCC")
    links, pending = await state.links_by_graph_ids(USER, Kind.EVENT, ["AAA", "BBB", "CCC"])
    assert (links, pending) == ({}, {"AAA", "CCC"})

    await state.save_link(_link("7", "AAA"), settled=[settled.id] if settled.id else [])
    links, pending = await state.links_by_graph_ids(USER, Kind.EVENT, ["AAA", "BBB", "CCC"])
    assert set(links) == {"AAA"} and links["AAA"].erp_id == "7"
    assert pending == {"CCC"}, "only the settled pending create is gone"
    assert [p.id for p in await _rows(state, PendingCreate)] == [other.id]


async def test_a_delta_cursor_is_saved_updated_read_and_dropped_per_collection_R29(state: State) -> None:
    assert await state.cursor(USER, "event") is None
    await state.set_cursor(USER, "event", "https://graph/delta?token=1")
    await state.set_cursor(USER, "contact", "https://graph/delta?token=c")
    await state.set_cursor(USER, "event", "https://graph/delta?token=2")
    assert await state.cursor(USER, "event") == "https://graph/delta?token=2"
    assert await state.cursor(USER, "contact") == "https://graph/delta?token=c"
    assert await state.cursor("someone@else.example", "event") is None
    await state.set_cursor(USER, "event", None)
    assert await state.cursor(USER, "event") is None
    assert await state.cursor(USER, "contact") == "https://graph/delta?token=c"


async def test_links_read_by_either_id_carry_every_field_R21(state: State) -> None:
    saved = _link("99", "G99")
    saved.erp_version = 3
    saved.graph_change_key = "ck"
    await state.save_link(saved)
    by_erp = await state.link_by_erp_id(USER, Kind.EVENT, "99")
    by_graph = await state.link_by_graph_id(USER, Kind.EVENT, "G99")
    assert by_erp is not None and by_graph is not None
    for found in (by_erp, by_graph):
        assert (found.id, found.graph_id, found.erp_version, found.graph_change_key) == (saved.id, "G99", 3, "ck")
        assert found.synced_at is not None
    assert await state.link_by_erp_id(USER, Kind.TASK, "99") is None
    assert await state.link_by_graph_id(USER, Kind.EVENT, "nope") is None
    pending = await _pending(state, "G100")
    assert pending.id is not None


async def test_journal_lines_are_written_and_failures_counted(state: State) -> None:
    """Written without the ORM: the failure counter (sync_journal_failures_total) still sees them."""
    from shared import metrics

    counted: list[tuple[str, str | None, str | None]] = []
    original = metrics.count_journal_failure
    import sync_core.state as state_module

    state_module.count_journal_failure = lambda user, kind, direction: counted.append((user, kind, direction))
    try:
        await state.journal(journal_entry(user=USER, outcome="failed", kind=Kind.EVENT, direction="outlook_to_erp"))
        await state.journal(journal_entry(user=USER, outcome="created", kind=Kind.EVENT))
    finally:
        state_module.count_journal_failure = original
    assert [j.outcome for j in await _rows(state, JournalEntry)] == ["failed", "created"]
    assert counted == [(USER, "event", "outlook_to_erp")]


async def test_a_users_state_is_upserted_field_by_field_R23_R35(state: State) -> None:
    """R23/R35: the last sync times and health of a user are set a few fields at a time; the first
    write makes the row (healthy unless told otherwise), later ones change only the fields given."""
    user = f"{uuid.uuid4().hex[:8]}@contoso.example"
    synced = now_utc()
    await state.update_user_state(user, last_sync_outlook_to_erp=synced)
    row = await state.user_state(user)
    assert row is not None and row.healthy is True and as_utc(row.last_sync_outlook_to_erp) == synced
    await state.update_user_state(user, healthy=False, last_error="GraphAuthError: expired")
    await state.update_user_state(user, graph_user_id="g-1")
    row = await state.user_state(user)
    assert row is not None
    assert (row.healthy, row.last_error, row.graph_user_id) == (False, "GraphAuthError: expired", "g-1")
    assert as_utc(row.last_sync_outlook_to_erp) == synced  # untouched by the later writes
    await state.update_user_state(user)  # nothing to set: nothing written, nothing raised
