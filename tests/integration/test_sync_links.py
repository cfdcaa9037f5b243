"""sync-core's links, on SQLite and PostgreSQL: a link is saved with its journal line in one
transaction, upserted on its ERP key (never a second row for one ERP record), written again when it
was dropped meanwhile, and a delta page reads its links and pending creates at once (R21, R25, R20)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlmodel import col, select

from shared import db
from shared.envelope import Kind
from sync_core.db import migrate
from sync_core.models import JournalEntry, Link, PendingCreate
from sync_core.state import State, journal_entry, now_utc

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
