"""Where ERP data lives on Graph items (contracts.md, "Outlook side"): extended properties, To Do links."""

from __future__ import annotations

import json
from typing import Any

from shared.envelope import Kind

from ..model import Person

NAMESPACE = "7d5e2c1a-3b4f-4c8e-9a6d-2f1e0b9c8d7a"
ERP_ID = f"String {{{NAMESPACE}}} Name ErpId"
CHRONO = f"String {{{NAMESPACE}}} Name Chrono"
CONTACTS = f"String {{{NAMESPACE}}} Name Contacts"
PARTICIPANTS = f"String {{{NAMESPACE}}} Name Participants"

EVENT_PROPERTIES = (ERP_ID, CHRONO, CONTACTS, PARTICIPANTS)
CONTACT_PROPERTIES = (ERP_ID,)

# To Do tasks have no extended properties: the ERP id rides in a linked resource (R21), the fields
# To Do has no property for (contact, time spent) in an open extension.
LINKED_APPLICATION = "ERP"
TODO_EXTENSION = "com.outlookerpsync.activity"


def expand_clause(property_ids: tuple[str, ...]) -> str:
    """The `$expand` value that returns our single-value extended properties with the item."""
    ids = " or ".join(f"id eq '{pid}'" for pid in property_ids)
    return f"singleValueExtendedProperties($filter={ids})"


def erp_id_filter(kind: Kind, erp_id: str) -> str:
    """The `$filter` that re-finds an event or contact by its ERP id (R21)."""
    return f"singleValueExtendedProperties/any(ep: ep/id eq '{ERP_ID}' and ep/value eq '{erp_ref(kind, erp_id)}')"


def erp_ref(kind: Kind, erp_id: str) -> str:
    """`<kind>:<erp id>`, the value stored on the Outlook item (R21)."""
    return f"{kind.value}:{erp_id}"


def parse_erp_ref(value: str | None) -> tuple[Kind | None, str | None]:
    """(kind, erp id) from `<kind>:<erp id>`; a bare id has no kind."""
    if not value or not value.strip():
        return None, None
    head, sep, tail = value.strip().partition(":")
    if not sep:
        return None, head
    try:
        return Kind(head.lower()), tail or None
    except ValueError:
        return None, tail or None


def read_properties(item: dict[str, Any]) -> dict[str, str]:
    """Our extended properties of a Graph item, by property id (ids compared case-insensitively)."""
    wanted = {pid.lower(): pid for pid in EVENT_PROPERTIES}
    out: dict[str, str] = {}
    for prop in item.get("singleValueExtendedProperties") or ():
        pid = wanted.get(str(prop.get("id", "")).lower())
        if pid is not None and prop.get("value") is not None:
            out[pid] = str(prop["value"])
    return out


def property_entry(pid: str, value: str) -> dict[str, str]:
    return {"id": pid, "value": value}


def dump_persons(persons: tuple[Person, ...]) -> str:
    return json.dumps([{"name": p.name, "email": p.email} for p in persons], ensure_ascii=False, separators=(",", ":"))


def load_persons(value: str | None) -> tuple[Person, ...]:
    """Persons from the Contacts property; a damaged value reads as none rather than failing the item."""
    if not value:
        return ()
    try:
        data = json.loads(value)
    except ValueError:
        return ()
    out = []
    for entry in data if isinstance(data, list) else ():
        if isinstance(entry, dict) and (entry.get("email") or entry.get("name")):
            out.append(Person(name=str(entry.get("name") or ""), email=str(entry.get("email") or "")))
    return tuple(out)


def dump_codes(codes: tuple[str, ...]) -> str:
    return json.dumps(list(codes), separators=(",", ":"))


def load_codes(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    try:
        data = json.loads(value)
    except ValueError:
        return ()
    return tuple(str(c) for c in data if c) if isinstance(data, list) else ()
