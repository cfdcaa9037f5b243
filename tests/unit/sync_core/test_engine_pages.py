"""The engine's pure helpers for delta pages and ERP snapshots (R21, R22, R29)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sync_core.domain.fingerprint import fingerprint
from sync_core.domain.mapping.properties import ERP_ID
from sync_core.engine import _adopt_pending_write, _lanes, _snapshot, _unchanged
from sync_core.models import Link
from tests.unit.sync_core.domain_builders import task


def event(item_id: str, erp: str | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {"id": item_id, "changeKey": f"ck-{item_id}"}
    if erp:
        raw["singleValueExtendedProperties"] = [{"id": ERP_ID, "value": erp}]
    return raw


def contact(item_id: str, *emails: str) -> dict[str, Any]:
    return {"id": item_id, "emailAddresses": [{"address": e} for e in emails]}


def ids(lanes: list[list[dict[str, Any]]]) -> list[list[str]]:
    return [[r["id"] for r in lane] for lane in lanes]


def test_distinct_items_each_get_a_lane_R29() -> None:
    items = [event("a"), event("b"), event("c")]
    assert ids(_lanes(items, {})) == [["a"], ["b"], ["c"]]


def test_items_carrying_the_same_erp_id_share_a_lane_in_page_order_R21() -> None:
    items = [event("a", "event:7"), event("b"), event("c", "event:7")]
    assert ids(_lanes(items, {})) == [["a", "c"], ["b"]]


def test_the_item_as_read_decides_the_lane_not_the_delta_row_R21() -> None:
    # Delta rows carry no extended properties: the item read through $batch does.
    items = [event("a"), event("b")]
    fulls = {"a": event("a", "event:9"), "b": event("b", "event:9")}
    assert ids(_lanes(items, fulls)) == [["a", "b"]]


def test_contacts_sharing_an_address_share_a_lane_case_insensitively_R09() -> None:
    items = [
        contact("a", "Rui@Acme.example"),
        contact("b", "ana@acme.example"),
        contact("c", "rui@acme.example"),
        contact("d", "x@y.example"),
    ]
    assert ids(_lanes(items, {})) == [["a", "c"], ["b"], ["d"]]


def test_an_item_tying_two_lanes_joins_them_R09() -> None:
    items = [
        contact("a", "one@x.example"),
        contact("b", "two@x.example"),
        contact("c", "one@x.example", "two@x.example"),
    ]
    [lane] = ids(_lanes(items, {}))
    assert sorted(lane) == ["a", "b", "c"] and lane[-1] == "c"
    # A later item keyed on the joined lane's address lands in the same lane.
    items.append(contact("d", "two@x.example"))
    [lane] = ids(_lanes(items, {}))
    assert lane[-1] == "d"


def link(change_key: str | None, erp_version: int | None = 1) -> Link:
    return Link(
        user="u@x.example",
        kind="event",
        collection="event",
        graph_id="g",
        erp_id="1",
        fingerprint="f",
        graph_change_key=change_key,
        erp_version=erp_version,
        synced_at=datetime.now(UTC),
    )


def test_an_item_at_the_linked_change_key_is_unchanged_R22() -> None:
    assert _unchanged({"id": "g", "changeKey": "k1"}, link("k1"))
    assert not _unchanged({"id": "g", "changeKey": "k2"}, link("k1"))
    assert not _unchanged({"id": "g", "changeKey": "k1"}, None)  # not linked: an Outlook creation
    assert not _unchanged({"id": "g"}, link(None))  # To Do: no change key, always read
    assert not _unchanged({"id": "g", "changeKey": None}, link(None))


def test_the_snapshot_is_used_only_when_it_is_the_announced_version_R22() -> None:
    data = {"id": 5, "version": 3, "subject": "x"}
    assert _snapshot({"erp_id": "5", "version": 3, "data": data}) == data
    assert _snapshot({"erp_id": "5", "version": 4, "data": data}) is None  # another version: read the ERP
    assert _snapshot({"erp_id": "6", "version": 3, "data": data}) is None  # another record
    assert _snapshot({"erp_id": "5", "version": 3}) is None  # no snapshot
    assert _snapshot({"erp_id": "5", "version": None, "data": data}) is None
    # A signed ERP event's data is the ERP developer's: not trusted to be complete.
    assert _snapshot({"erp_id": "5", "version": 3, "data": data, "event_id": "evt_1"}) is None


def test_a_write_of_unknown_outcome_found_on_its_target_side_is_what_the_link_records_R18_R22() -> None:
    """ADR 0025 (finding 7): our write of "v2" to the ERP lost its answer; the ERP holding "v2" means it
    was applied, so the user's later Outlook edit "v3" is a plain change, not a conflict with it."""
    v1, v2, v3 = task(subject="v1"), task(subject="v2"), task(subject="v3")
    row = link("k1")
    row.fingerprint, row.pending_write = fingerprint(v1), f"erp:{fingerprint(v2)}"
    _adopt_pending_write(row, outlook=v3, erp=v2)
    assert row.fingerprint == fingerprint(v2)


def test_a_write_of_unknown_outcome_held_only_by_its_source_side_changes_nothing_R22() -> None:
    # Outlook (the source) holds "v2", the ERP does not: the write was not applied, the ERP still owes it.
    v1, v2 = task(subject="v1"), task(subject="v2")
    row = link("k1")
    row.fingerprint, row.pending_write = fingerprint(v1), f"erp:{fingerprint(v2)}"
    _adopt_pending_write(row, outlook=v2, erp=v1)
    assert row.fingerprint == fingerprint(v1)
    # The same for a write to Outlook (a To Do update whose later steps failed): found there, adopted.
    row.pending_write = f"outlook:{fingerprint(v2)}"
    _adopt_pending_write(row, outlook=v1, erp=v2)
    assert row.fingerprint == fingerprint(v1)
    _adopt_pending_write(row, outlook=v2, erp=task(subject="v3"))
    assert row.fingerprint == fingerprint(v2)
    # Nothing remembered, or the item gone: nothing to adopt.
    row.pending_write, row.fingerprint = None, "f"
    _adopt_pending_write(row, outlook=v2, erp=v2)
    _adopt_pending_write(None, outlook=v2, erp=v2)
    assert row.fingerprint == "f"
