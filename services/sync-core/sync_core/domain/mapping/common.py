"""Small readers shared by the Graph mappings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..rules import company_code, company_text
from ..timezones import parse_date_time


def text(value: Any) -> str | None:
    """A stripped string, None when empty. NUL characters are dropped: no database column holds one
    and the ERP refuses them (422), so no canonical text carries one, from either side."""
    if value is None:
        return None
    out = str(value).replace("\x00", "").strip()
    return out or None


def without_nul(body: dict[str, Any]) -> dict[str, Any]:
    """An API body with NUL characters dropped from its texts and lists of texts (see `text`)."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if isinstance(value, str):
            value = value.replace("\x00", "")
        elif isinstance(value, list):
            value = [v.replace("\x00", "") if isinstance(v, str) else v for v in value]
        out[key] = value
    return out


def instant(value: Any) -> datetime | None:
    """An ISO 8601 instant (Graph `lastModifiedDateTime`, ERP times) as aware UTC; naive means UTC."""
    if not value:
        return None
    dt = value if isinstance(value, datetime) else parse_date_time(str(value))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def split_categories(categories: Any) -> tuple[str | None, tuple[str, ...]]:
    """(partner code from the first `#CODE#` category, the other categories) — R11."""
    partner: str | None = None
    others: list[str] = []
    for cat in categories or ():
        code = company_code(str(cat))
        if code and partner is None:
            partner = code
        elif not code:
            others.append(str(cat))
    return partner, tuple(others)


def join_categories(partner_code: str | None, others: tuple[str, ...]) -> list[str]:
    """Categories to write: the partner as `#CODE#` first (R11), then the user's own ones."""
    out = [company_text(partner_code)] if partner_code else []
    return out + [c for c in others if company_code(c) is None]
